-- Trace context of executions and task attempts (ossa_runtime.tracing, orchestrator_svc.traces):
-- one execution is one trace. Its span id (and its parent's, the call that started it) is chosen
-- when it starts; each task attempt gets a span id when it is leased, handed to the agent as the
-- parent of its own spans. The spans are recorded when they end, by whichever process sees it.
ALTER TABLE executions
    ADD COLUMN trace_id CHAR(32),
    ADD COLUMN trace_parent_span_id CHAR(16),
    ADD COLUMN trace_span_id CHAR(16);

ALTER TABLE tasks ADD COLUMN trace_span_id CHAR(16);
ALTER TABLE task_attempts ADD COLUMN trace_span_id CHAR(16);
