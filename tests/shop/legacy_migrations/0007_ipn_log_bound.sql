-- Rejected IPNs past an address's allowance are counted per minute instead of logged one by
-- one, so a flood of junk cannot fill the disk (see shop/ipn.py, "the log's bound").
CREATE TABLE ipn_log_suppressed (
    minute TEXT NOT NULL,
    remote_addr TEXT NOT NULL,
    count INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (minute, remote_addr)
);

-- The allowance counts recent rejected (and still open) entries, per address and in all.
CREATE INDEX ipn_log_by_addr ON ipn_log (remote_addr, outcome, received_at);

CREATE INDEX ipn_log_by_outcome ON ipn_log (outcome, received_at);
