-- Synthetic business_events for the demo: `user_registration` with a daily rhythm, ending at the
-- last whole minute, and a sudden drop for the last minutes, almost all of it from
-- country=DE, platform=android (what a root-cause analysis should find).
--
-- psql variables (all required; scripts/demo.sh sets them):
--   days          how many days of minutes (e.g. 2)
--   rate          mean events per minute (e.g. 250)
--   amplitude     daily swing as a fraction of rate (e.g. 0.4); the peak is at the end, so the
--                 rhythm is flat where the drop happens and 3-sigma sees the drop, not the trend
--   drop_minutes  length of the drop at the end (e.g. 40)
--   seed          setseed() value in [-1, 1], for a reproducible noise pattern
-- The drop removes 3 of every 10 events (the DE/android share is 4 in 10): a 30% drop.
\set ON_ERROR_STOP on

SELECT setseed(:seed);

WITH minutes AS (
    -- m = 0 is the last whole minute, m grows into the past.
    SELECT m, date_trunc('minute', now()) - (m + 1) * interval '1 minute' AS ts
    FROM generate_series(0, :days * 1440 - 1) AS m
), counts AS (
    SELECT m, ts,
           greatest(0, round(:rate * (1 + :amplitude * cos(2 * pi() * m / 1440.0))
                             * (1 + (random() - 0.5) * 0.1)))::int AS n
    FROM minutes
)
INSERT INTO business_events (event_type, event_timestamp, payload)
SELECT 'user_registration',
       c.ts + (j * 60.0 / c.n) * interval '1 second',
       jsonb_build_object(
           'country',  (ARRAY['DE','DE','DE','DE','DE','FR','FR','US','US','BR'])[1 + j % 10],
           'platform', (ARRAY['android','android','android','android','ios',
                              'android','ios','web','ios','android'])[1 + j % 10])
FROM counts AS c, generate_series(0, c.n - 1) AS j
WHERE NOT (c.m < :drop_minutes AND j % 10 < 3);

ANALYZE business_events;
