-- Failed console logins, to slow down password guessing (shared by every worker).
CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY,
    remote_addr TEXT NOT NULL,
    failed_at TEXT NOT NULL
);

CREATE INDEX login_failures_by_addr ON login_failures (remote_addr, failed_at);
