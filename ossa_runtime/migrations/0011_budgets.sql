-- Budgets (orchestrator_svc/budgets.py): an execution may be bounded in tasks, seconds and cost.
-- budget: {"max_tasks", "max_seconds", "max_cost"} as given at start (NULL: unbounded);
-- deadline: started_at + max_seconds; spent_cost: the sum of the costs agents reported.
ALTER TABLE executions ADD COLUMN budget JSONB;
ALTER TABLE executions ADD COLUMN deadline TIMESTAMPTZ;
ALTER TABLE executions ADD COLUMN spent_cost DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE task_attempts ADD COLUMN cost DOUBLE PRECISION;

-- Executions that may still run out of time, for the deadline sweep.
CREATE INDEX idx_executions_deadline ON executions (deadline)
    WHERE deadline IS NOT NULL AND status IN ('pending', 'running', 'waiting_approval');
