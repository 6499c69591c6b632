-- Metrics queries (monitoring_svc): one metric over a time range, for all agents or for one.
-- Both indexes cover the aggregated value, so a query is an index-only range scan once autovacuum
-- has set the visibility map (insert-only tables are vacuumed since PostgreSQL 13).
CREATE INDEX idx_metrics_name_timestamp ON metrics (metric_name, timestamp) INCLUDE (metric_value);
CREATE INDEX idx_metrics_agent_name_timestamp ON metrics (agent_id, metric_name, timestamp) INCLUDE (metric_value);

-- The retention sweep deletes by age across all metrics: rows arrive in time order, so a BRIN
-- index finds the oldest pages for a fraction of a B-tree's size and insert cost.
CREATE INDEX idx_metrics_timestamp_brin ON metrics USING brin (timestamp);
