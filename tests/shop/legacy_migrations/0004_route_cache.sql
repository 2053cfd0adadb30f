-- The exchanger's route list and definitions, shared by every worker (see shop/routecache.py).
CREATE TABLE route_cache (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    fetched_at REAL NOT NULL,
    -- A worker refreshing this entry holds it until then; others keep serving the old value.
    refreshing_until REAL NOT NULL DEFAULT 0,
    -- Set when the last refresh failed: pages say the rates may be out of date.
    failed_at REAL
);
