-- Batched dispatch (orchestrator_svc/starts.py, completions.py, dispatch.py).
-- step_count lets one statement tell that a completion finished its execution; NULL on
-- executions started before this migration (the orchestrator then counts from the definition).
ALTER TABLE executions ADD COLUMN step_count INT CHECK (step_count > 0);

-- The leases an agent holds (free slots, reconciliation), without scanning finished tasks.
CREATE INDEX idx_tasks_held ON tasks (agent_id) WHERE status IN ('assigned', 'running');
