-- No query looks messages up by their carrier id: delivery reports find
-- their message through message_parts (connector, provider_id). The index
-- on messages cost a write at a random place of the index (carrier ids
-- are random) for every message a carrier took.
DROP INDEX IF EXISTS messages_provider;
