-- Semantic search (search_svc). PostgreSQL stays the system of record; the vector index follows it.
--
-- search_outbox: one row per change the index has to catch up with, written by triggers in the
-- same transaction as the change (so the registry and orchestrator need no code for indexing).
-- The indexer claims rows (FOR UPDATE SKIP LOCKED), re-reads the entity's current state, writes
-- the vector store and only then deletes the row; a failed write leaves the row with its error,
-- to be retried after `available_at` (exponential backoff).
CREATE TABLE search_outbox (
    id BIGSERIAL PRIMARY KEY,
    kind VARCHAR(20) NOT NULL CHECK (kind IN ('agent', 'workflow', 'knowledge')),
    entity_id UUID NOT NULL,
    op VARCHAR(10) NOT NULL CHECK (op IN ('upsert', 'delete')),
    chunk_count INT,  -- a deleted knowledge document's chunks (their point ids derive from it)
    attempts INT NOT NULL DEFAULT 0,
    last_error TEXT,
    available_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX idx_search_outbox_ready ON search_outbox (available_at, id);

CREATE FUNCTION ossa_search_outbox() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_ARGV[0] = 'knowledge' THEN
        INSERT INTO search_outbox (kind, entity_id, op, chunk_count)
        VALUES (TG_ARGV[0], OLD.id, 'delete', OLD.chunk_count);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO search_outbox (kind, entity_id, op) VALUES (TG_ARGV[0], OLD.id, 'delete');
    ELSE
        INSERT INTO search_outbox (kind, entity_id, op) VALUES (TG_ARGV[0], NEW.id, 'upsert');
    END IF;
    PERFORM pg_notify('ossa_search_outbox', TG_ARGV[0]);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Agents: only changes to what is indexed (heartbeats update status and last_heartbeat every
-- second; the live status is read from PostgreSQL at search time, never stored in the index).
CREATE TRIGGER agents_search_insert_delete AFTER INSERT OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION ossa_search_outbox('agent');
CREATE TRIGGER agents_search_update AFTER UPDATE ON agents
    FOR EACH ROW WHEN (
        OLD.name IS DISTINCT FROM NEW.name OR OLD.type IS DISTINCT FROM NEW.type
        OR OLD.version IS DISTINCT FROM NEW.version OR OLD.capabilities IS DISTINCT FROM NEW.capabilities
        OR OLD.metadata IS DISTINCT FROM NEW.metadata)
    EXECUTE FUNCTION ossa_search_outbox('agent');

-- Workflows: indexed once published (drafts are not searchable), so status changes count.
CREATE TRIGGER workflows_search_insert_delete AFTER INSERT OR DELETE ON workflows
    FOR EACH ROW EXECUTE FUNCTION ossa_search_outbox('workflow');
CREATE TRIGGER workflows_search_update AFTER UPDATE ON workflows
    FOR EACH ROW WHEN (
        OLD.status IS DISTINCT FROM NEW.status OR OLD.name IS DISTINCT FROM NEW.name
        OR OLD.description IS DISTINCT FROM NEW.description OR OLD.definition IS DISTINCT FROM NEW.definition)
    EXECUTE FUNCTION ossa_search_outbox('workflow');

-- The knowledge base: documents and the chunks they are split into (the vectors' source text).
-- A chunk's id is uuid5(document_id, chunk_index), so a deleted document's points can be named.
CREATE TABLE knowledge_documents (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    source VARCHAR(255) NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    chunk_count INT NOT NULL CHECK (chunk_count >= 0),
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_knowledge_documents_source ON knowledge_documents (source, timestamp);

CREATE TABLE knowledge_chunks (
    id UUID PRIMARY KEY,
    document_id UUID NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
    chunk_index INT NOT NULL CHECK (chunk_index >= 0),
    content TEXT NOT NULL,
    source VARCHAR(255) NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (document_id, chunk_index)
);

CREATE TRIGGER knowledge_search_insert_delete AFTER INSERT OR DELETE ON knowledge_documents
    FOR EACH ROW EXECUTE FUNCTION ossa_search_outbox('knowledge');
