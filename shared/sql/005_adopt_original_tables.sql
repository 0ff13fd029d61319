-- Adopting a database the original system created: its aggregated_metrics predates 001 (whose
-- CREATE TABLE IF NOT EXISTS then kept it as it was), so the columns bizpulse added and the
-- series-aware unique key may be missing. Every statement is a no-op on a database 001 created.

ALTER TABLE aggregated_metrics ADD COLUMN IF NOT EXISTS series TEXT NOT NULL DEFAULT '';
ALTER TABLE aggregated_metrics ADD COLUMN IF NOT EXISTS numerator DOUBLE PRECISION;
ALTER TABLE aggregated_metrics ADD COLUMN IF NOT EXISTS denominator DOUBLE PRECISION;
ALTER TABLE aggregated_metrics ADD COLUMN IF NOT EXISTS anomaly_score DOUBLE PRECISION;
ALTER TABLE aggregated_metrics ADD COLUMN IF NOT EXISTS expected DOUBLE PRECISION;
ALTER TABLE aggregated_metrics ADD COLUMN IF NOT EXISTS lower_bound DOUBLE PRECISION;
ALTER TABLE aggregated_metrics ADD COLUMN IF NOT EXISTS upper_bound DOUBLE PRECISION;
ALTER TABLE aggregated_metrics ADD COLUMN IF NOT EXISTS method TEXT;
ALTER TABLE aggregated_metrics ADD COLUMN IF NOT EXISTS scored_at TIMESTAMPTZ;
ALTER TABLE aggregated_metrics ADD COLUMN IF NOT EXISTS updated_at TIMESTAMPTZ NOT NULL DEFAULT now();
ALTER TABLE aggregated_metrics ADD COLUMN IF NOT EXISTS events BIGINT;
ALTER TABLE aggregated_metrics ALTER COLUMN is_anomaly SET DEFAULT false;

-- The original key was UNIQUE (metric_name, metric_timestamp): with dimension series, one
-- metric has several rows per interval, so that key goes and (metric_name, series,
-- metric_timestamp) takes its place. Its constraint name is whatever the original chose.
DO $$
DECLARE
    old_key text;
BEGIN
    SELECT c.conname INTO old_key
    FROM pg_constraint c
    WHERE c.conrelid = 'aggregated_metrics'::regclass AND c.contype = 'u'
      AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
           FROM pg_attribute a
           WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)) = ARRAY['metric_name', 'metric_timestamp'];
    IF old_key IS NOT NULL THEN
        EXECUTE format('ALTER TABLE aggregated_metrics DROP CONSTRAINT %I', old_key);
        -- 001 made this key on tables it created; an adopted table gets it here
        CREATE UNIQUE INDEX IF NOT EXISTS aggregated_metrics_metric_series_ts_key
            ON aggregated_metrics (metric_name, series, metric_timestamp);
    END IF;
END
$$;
