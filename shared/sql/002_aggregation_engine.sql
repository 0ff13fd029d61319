-- Aggregation engine: every metric kind, dimension series, late data.

-- A ratio whose denominator is 0 has no value (NULL), which is not the same as a rate of 0.
ALTER TABLE aggregated_metrics ALTER COLUMN metric_value DROP NOT NULL;
-- How many events an interval's value rests on: detection weighs evidence by it.
ALTER TABLE aggregated_metrics ADD COLUMN IF NOT EXISTS events BIGINT;

-- The dimension series a metric has, for zero-filling series that went quiet and for the
-- per-metric cardinality cap (series beyond it are folded into 'other').
CREATE TABLE IF NOT EXISTS metric_series (
    metric_name VARCHAR(100) NOT NULL,
    series TEXT NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (metric_name, series)
);
