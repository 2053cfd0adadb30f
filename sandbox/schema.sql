-- The sandbox exchanger's own store. It is a test tool: start_fresh() may drop it.
CREATE TABLE IF NOT EXISTS orders (
    uid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    rid TEXT NOT NULL,
    secret TEXT NOT NULL,
    route_id TEXT NOT NULL,
    status TEXT NOT NULL,
    in_amount TEXT NOT NULL,
    out_amount TEXT NOT NULL,
    from_values TEXT NOT NULL,
    to_values TEXT NOT NULL,
    route_values TEXT NOT NULL,
    lang TEXT NOT NULL,
    hide_out_data INTEGER NOT NULL,
    client_callback_url TEXT NOT NULL,
    ipn_url TEXT NOT NULL,
    ipn_secret TEXT NOT NULL,
    partner TEXT NOT NULL,
    api_key TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    status_changed_at REAL NOT NULL,
    last_event_ms INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS ipn_deliveries (
    id INTEGER PRIMARY KEY,
    order_uid INTEGER NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    new_status TEXT NOT NULL,
    payload TEXT NOT NULL,
    delay_seconds REAL NOT NULL,
    created_at REAL NOT NULL,
    sent_at REAL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    response TEXT,
    error TEXT
);

CREATE INDEX IF NOT EXISTS ipn_deliveries_by_order ON ipn_deliveries (order_uid);

CREATE TABLE IF NOT EXISTS api_nonces (
    api_key TEXT PRIMARY KEY,
    last_time INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
