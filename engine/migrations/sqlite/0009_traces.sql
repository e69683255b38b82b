-- One trace per message: the W3C `traceparent` of the span that made a
-- message, an event or a status webhook, so the spans of the work done on
-- it later (another task, another node, after a wait) join its trace.
ALTER TABLE messages ADD COLUMN trace_context TEXT;
ALTER TABLE events ADD COLUMN trace_context TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN trace_context TEXT;
