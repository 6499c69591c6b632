-- What the orchestrator needs beyond the spec's columns: workflow descriptions, execution
-- priority and idempotency, task leases (fencing token, expiry, attempts, backoff) and history.

ALTER TABLE workflows ADD COLUMN description TEXT NOT NULL DEFAULT '';

ALTER TABLE executions
    ADD COLUMN priority INT CHECK (priority BETWEEN 1 AND 10),
    ADD COLUMN idempotency_key VARCHAR(255) UNIQUE,
    ADD COLUMN updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP;

ALTER TABLE tasks
    ADD COLUMN capability VARCHAR(255) NOT NULL DEFAULT '',
    ADD COLUMN agent_type VARCHAR(50),
    ADD COLUMN attempt INT NOT NULL DEFAULT 0,
    ADD COLUMN max_retries INT NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
    ADD COLUMN lease_seconds INT NOT NULL DEFAULT 30 CHECK (lease_seconds > 0),
    ADD COLUMN fencing_token BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN lease_expires_at TIMESTAMP WITH TIME ZONE,
    ADD COLUMN available_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    ADD COLUMN enqueued_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    ADD COLUMN created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    ADD CONSTRAINT tasks_execution_step UNIQUE (execution_id, name);

-- The ready queue: highest priority first, FIFO within a priority.
CREATE INDEX idx_tasks_ready ON tasks (priority DESC, enqueued_at, id) WHERE status = 'pending';
-- Leases to expire.
CREATE INDEX idx_tasks_leased ON tasks (lease_expires_at) WHERE status IN ('assigned', 'running');

-- One row per lease of a task: who held it, how it ended, and calls that came too late.
CREATE TABLE task_attempts (
    task_id UUID NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    attempt INT NOT NULL,
    agent_id UUID,
    fencing_token BIGINT NOT NULL,
    outcome VARCHAR(20) NOT NULL DEFAULT 'running'
        CHECK (outcome IN ('running', 'completed', 'failed', 'expired', 'cancelled')),
    error TEXT,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    finished_at TIMESTAMP WITH TIME ZONE,
    late_results INT NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, attempt)
);

-- Agents that let a lease expire recently (quarantine, see orchestrator_svc/leases.py).
CREATE INDEX idx_task_attempts_agent ON task_attempts (agent_id, finished_at) WHERE outcome = 'expired';

-- Calls made with a stale fencing token: recorded, never applied.
CREATE TABLE late_results (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    task_id UUID NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    fencing_token BIGINT NOT NULL,
    kind VARCHAR(20) NOT NULL CHECK (kind IN ('renew', 'complete', 'fail')),
    payload JSONB DEFAULT '{}',
    received_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_late_results_task ON late_results(task_id);

-- A workflow's definition is immutable once it leaves draft (the service never updates it; this
-- keeps anything else from doing so either).
CREATE FUNCTION ossa_workflow_definition_immutable() RETURNS trigger AS $$
BEGIN
    IF OLD.status <> 'draft' AND NEW.definition IS DISTINCT FROM OLD.definition THEN
        RAISE EXCEPTION 'workflow % is % and its definition is immutable', OLD.id, OLD.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER workflows_definition_immutable BEFORE UPDATE ON workflows
    FOR EACH ROW EXECUTE FUNCTION ossa_workflow_definition_immutable();
