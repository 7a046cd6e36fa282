-- Staff registrations shared between nodes (issue 16), as SQLite's 0008: each node writes its
-- registrar's bindings here so a desk call on another node can reach the phone. `path` is the
-- REGISTER's Path header values as a JSON array of strings; `source` is "ip:port".
CREATE TABLE registrations (
    "user" TEXT NOT NULL,
    contact TEXT NOT NULL,
    source TEXT NOT NULL,
    transport TEXT NOT NULL,
    path TEXT NOT NULL DEFAULT '[]',
    expires_at BIGINT NOT NULL,
    node TEXT NOT NULL,
    PRIMARY KEY ("user", contact)
);
