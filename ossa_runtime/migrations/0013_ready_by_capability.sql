-- The ready queue by capability, and the tasks routed to one agent: a claim or a start's sync-match
-- check walks only the head of the queues it serves (orchestrator_svc/claims.py, starts.py). They
-- replace idx_tasks_ready (priority, enqueued_at over every pending task), along which both read
-- every pending task queued ahead of theirs: a backlog of 100k tasks of one capability cost each
-- claim and start of every other capability tens of ms, and the planner kept choosing that index
-- whenever one capability held most of the queue. Pending tasks in all: idx_tasks_status.
CREATE INDEX idx_tasks_ready_capability ON tasks (capability, priority DESC, enqueued_at, id)
    WHERE status = 'pending' AND target_agent_id IS NULL;
CREATE INDEX idx_tasks_ready_target ON tasks (target_agent_id, priority DESC, enqueued_at, id)
    WHERE status = 'pending' AND target_agent_id IS NOT NULL;
DROP INDEX idx_tasks_ready;
