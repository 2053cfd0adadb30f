-- An IPN for an unknown orderId tries only the few young drafts in limbo: found by index.
CREATE INDEX orders_in_limbo ON orders (from_xml, to_xml, created_at)
    WHERE status = 'draft' AND exchanger_id IS NULL;

-- Order creations per buyer session and per address, to throttle checkout.
CREATE TABLE checkout_attempts (
    id INTEGER PRIMARY KEY,
    session_key TEXT NOT NULL,
    remote_addr TEXT NOT NULL,
    attempted_at TEXT NOT NULL
);

CREATE INDEX checkout_attempts_by_session ON checkout_attempts (session_key, attempted_at);

CREATE INDEX checkout_attempts_by_addr ON checkout_attempts (remote_addr, attempted_at);
