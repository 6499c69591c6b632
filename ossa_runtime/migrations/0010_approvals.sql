-- Approvals (orchestrator_svc/approvals.py): a step may wait for a person or a governor agent before
-- it runs. Its gate is a task named `<step>~approval`; a person's gate waits in `waiting_approval`
-- (never leased), and so does its execution while any of its gates waits.
ALTER TABLE executions DROP CONSTRAINT IF EXISTS executions_status_check;
ALTER TABLE executions ADD CONSTRAINT executions_status_check
    CHECK (status IN ('pending', 'running', 'waiting_approval', 'completed', 'failed', 'cancelled'));
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
    CHECK (status IN ('pending', 'assigned', 'running', 'waiting_approval', 'completed', 'failed'));

-- Gates still undecided, for the timeout sweep (few rows: only approval gates are indexed).
CREATE INDEX idx_tasks_gates ON tasks (created_at)
    WHERE strpos(name, '~approval') > 0 AND status IN ('pending', 'waiting_approval');
