-- Which ivr node answered a call (`[cluster] node`), so that a node starting up closes only the
-- calls IT left open when it stopped (`open_calls`), never another node's live calls when
-- several nodes share one database. Rows from before this migration have '' (no node known);
-- every node treats those as its own, as every start did before.
ALTER TABLE calls ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX calls_open_by_node ON calls (node) WHERE ended_at IS NULL;
