-- Per-minute event counts of each of a metric's event types over the lateness window below its
-- watermark, as they were when it was last aggregated (functions/aggregate/counts.h): a tick
-- recomputes only from the first minute whose count has moved since. NULL: unknown, so the
-- next tick recomputes the whole lateness window.
ALTER TABLE metric_watermarks ADD COLUMN IF NOT EXISTS counts_from TIMESTAMPTZ;
ALTER TABLE metric_watermarks ADD COLUMN IF NOT EXISTS counts BIGINT[];
-- What the metric's definition was when the counts were taken (functions/aggregate/counts.h,
-- bp_counts_key): a changed definition recomputes the whole window once.
ALTER TABLE metric_watermarks ADD COLUMN IF NOT EXISTS counts_key BIGINT;
