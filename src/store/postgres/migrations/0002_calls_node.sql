-- Which ivr node answered a call (`[cluster] node`), as SQLite's 0007_calls_node: a node starting
-- up closes only the calls it left open (`open_calls`), never another node's live calls. Rows
-- from before this migration have '' (no node known) and count as every node's.
ALTER TABLE calls ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX calls_open_by_node ON calls (node) WHERE ended_at IS NULL;
