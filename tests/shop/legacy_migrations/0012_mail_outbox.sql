-- Mail to buyers, written in the same transaction as the status change that causes it, and
-- sent later (design.md 3: mail goes out from an outbox, never inline). One row per order and
-- kind, so a mail is queued once however often the change is reported.
CREATE TABLE mail_outbox (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    lang TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    UNIQUE (order_id, kind)
);

CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE state = 'pending';
