-- One row the readiness probe (`GET /readyz`) rewrites: a real write, so a full disk or a
-- database locked by another process shows as "not ready" while it lasts.
CREATE TABLE host_health (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  checked_at INTEGER NOT NULL
);
