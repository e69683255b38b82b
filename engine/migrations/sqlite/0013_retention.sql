-- The hourly housekeeping finds what has outlived its retention through
-- these indexes instead of reading whole tables while it holds the one
-- writer: a scan of a week of invocations blocked every write (accepts,
-- completions, timer fires) for as long as it took. Keys are in time
-- order, so each new row lands at the right edge of the index.
CREATE INDEX invocations_started ON invocations(started_at);
-- Only invocations that still hold a recording.
CREATE INDEX invocations_recorded ON invocations(started_at) WHERE recording_bytes > 0;
CREATE INDEX plugin_logs_at ON plugin_logs(at);
