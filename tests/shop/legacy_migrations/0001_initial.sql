-- Orders, their items and status history, and every IPN received.
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    -- One per rendered checkout form: a double submit finds the order the first one made.
    checkout_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    lang TEXT NOT NULL,
    currency TEXT NOT NULL,
    price TEXT NOT NULL,
    route_id TEXT NOT NULL,
    from_xml TEXT NOT NULL,
    from_name TEXT NOT NULL,
    to_xml TEXT NOT NULL,
    send_amount TEXT NOT NULL,
    requisites TEXT NOT NULL,
    buyer_email TEXT,
    ipn_secret TEXT NOT NULL,
    status TEXT NOT NULL,
    exchanger_id TEXT UNIQUE,
    exchanger_uid INTEGER,
    exchanger_rid TEXT,
    exchanger_secret TEXT,
    quoted_in TEXT,
    quoted_out TEXT,
    reported_in TEXT,
    reported_out TEXT,
    last_event_ms INTEGER,
    last_polled_at TEXT,
    review_reason TEXT,
    create_error TEXT
);

CREATE INDEX orders_by_status ON orders (status);

CREATE TABLE order_items (
    order_id INTEGER NOT NULL REFERENCES orders (id),
    product_id TEXT NOT NULL,
    name TEXT NOT NULL,
    unit_price TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

CREATE TABLE status_history (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    old_status TEXT,
    new_status TEXT NOT NULL,
    source TEXT NOT NULL,
    provider_ts INTEGER,
    note TEXT,
    created_at TEXT NOT NULL
);

CREATE INDEX status_history_by_order ON status_history (order_id);

CREATE TABLE ipn_log (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    remote_addr TEXT,
    content_type TEXT,
    body TEXT NOT NULL,
    order_id INTEGER REFERENCES orders (id),
    outcome TEXT NOT NULL,
    reason TEXT
);

CREATE INDEX ipn_log_by_order ON ipn_log (order_id);
