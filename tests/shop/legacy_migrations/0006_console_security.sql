-- Every console login attempt, shown in the console; failures also slow guessing.
CREATE TABLE login_attempts (
    id INTEGER PRIMARY KEY,
    remote_addr TEXT NOT NULL,
    attempted_at TEXT NOT NULL,
    -- 'ok', 'failed', or 'unlocked' (in with a one-time code past the limit)
    outcome TEXT NOT NULL
);

CREATE INDEX login_attempts_by_addr ON login_attempts (remote_addr, attempted_at);

CREATE INDEX login_attempts_by_time ON login_attempts (attempted_at);

INSERT INTO login_attempts (remote_addr, attempted_at, outcome)
    SELECT remote_addr, failed_at, 'failed' FROM login_failures;

DROP TABLE login_failures;

-- One-time codes printed by `flask console unlock`: they pass the login limit (sha256 only).
CREATE TABLE console_unlock_codes (
    code_hash TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);

-- Console sessions: the cookie holds only an id, so logout and a new password end them.
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    password_version TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
