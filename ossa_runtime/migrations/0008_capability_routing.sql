-- Capability routing (orchestrator_svc/router.py): a step may name its work in plain words
-- (`capability_query`) instead of an exact capability. Its task waits, unrouted, until the router
-- finds the best-matching live agent (semantic search over the agents collection) scoring at least
-- `routing_min_score`; then only that agent may lease it. The choice is kept on the task.
ALTER TABLE tasks
    ADD COLUMN capability_query TEXT,
    ADD COLUMN routing_min_score REAL CHECK (routing_min_score BETWEEN 0 AND 1),
    ADD COLUMN target_agent_id UUID,
    ADD COLUMN routing_score REAL,
    ADD COLUMN routing_note TEXT,
    ADD COLUMN routed_at TIMESTAMP WITH TIME ZONE;

-- Pending tasks still waiting for an agent to be chosen.
CREATE INDEX idx_tasks_unrouted ON tasks (enqueued_at)
    WHERE status = 'pending' AND capability_query IS NOT NULL AND target_agent_id IS NULL;
