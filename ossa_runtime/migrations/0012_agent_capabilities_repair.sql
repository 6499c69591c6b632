-- Repair: registrations that shared one INSERT (registry_svc.store) stored an agent's single
-- capability as a JSON string ("summarize") instead of a list (["summarize"]) until the batch
-- passed capabilities as JSON text. Wrap those strings in a list; the search trigger re-indexes them.
UPDATE agents SET capabilities = jsonb_build_array(capabilities), updated_at = CURRENT_TIMESTAMP
 WHERE jsonb_typeof(capabilities) = 'string';
