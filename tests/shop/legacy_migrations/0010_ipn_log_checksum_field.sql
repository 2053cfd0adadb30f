-- Where the checksum of a verified IPN travelled ("body:hash", "query:sign"): the docs never
-- say, so the first live IPN tells the merchant (flask ipn inspect).
ALTER TABLE ipn_log ADD COLUMN checksum_field TEXT;
