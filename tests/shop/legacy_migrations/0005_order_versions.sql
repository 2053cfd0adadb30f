-- A version per order, so a poll answer overtaken by an IPN is dropped instead of applied
-- (orders.apply_event); when an order finished, and its refund checks after done.
ALTER TABLE orders ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN finished_at TEXT;
ALTER TABLE orders ADD COLUMN settle_checks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN settle_check_at TEXT;

-- Orders finished before this migration keep no refund checks: their window is unknown.
UPDATE orders SET finished_at = updated_at
WHERE status IN ('done', 'returned', 'deleted', 'create_failed');

CREATE INDEX orders_by_settle_check ON orders (settle_check_at) WHERE settle_check_at IS NOT NULL;
