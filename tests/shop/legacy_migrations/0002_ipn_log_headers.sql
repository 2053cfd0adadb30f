-- The request headers that help tell a real IPN from a forged one (proxies, client).
ALTER TABLE ipn_log ADD COLUMN headers TEXT;

CREATE INDEX ipn_log_by_received_at ON ipn_log (received_at);
