-- Helpers of bench/aggregate/run.py, installed into the throwaway benchmark database only.
-- Everything is prefixed bench_ so nothing collides with bizpulse's schema.

-- The event mix, per mille: 20 event types, heavy page views and API calls, a thin tail of
-- registrations, orders and failures (what a product's business_events typically hold).
CREATE TABLE IF NOT EXISTS bench_mix (event_type text PRIMARY KEY, permille int NOT NULL);
TRUNCATE bench_mix;
INSERT INTO bench_mix VALUES
  ('page_view', 344), ('api_call', 100), ('search', 70), ('login', 60), ('session_start', 60),
  ('feature_used', 50), ('add_to_cart', 50), ('logout', 40), ('email_open', 40),
  ('checkout_started', 30), ('registration_attempt', 30), ('order_placed', 25),
  ('registration_success', 24), ('user_registration', 24), ('error', 20), ('email_click', 15),
  ('password_reset', 7), ('payment_failed', 5), ('subscription_started', 4),
  ('subscription_cancelled', 2);

-- One text[] of 1000 event types in the mix's proportions: a uniform draw from it is the mix.
CREATE OR REPLACE FUNCTION bench_mix_array() RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT array_agg(event_type ORDER BY event_type, g)
  FROM bench_mix, generate_series(1, permille) AS g
$$;

-- Inserts n events spread evenly (with jitter) over [t0, t1), in time order like a live writer.
-- Payloads: every event has user_id, country, platform; each type adds its own fields.
CREATE OR REPLACE FUNCTION bench_insert(t0 timestamptz, t1 timestamptz, n bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  mix text[] := bench_mix_array();
  step float8 := extract(epoch FROM t1 - t0) / greatest(n, 1);
  inserted bigint;
BEGIN
  IF n <= 0 THEN
    RETURN 0;
  END IF;
  INSERT INTO business_events (event_type, event_timestamp, payload)
  SELECT t, ts, p.payload
  FROM (
    SELECT mix[1 + floor(random() * 1000)::int] AS t,
           t0 + make_interval(secs => (i - 1 + random()) * step) AS ts,
           1 + floor(random() * 10)::int AS c,
           1 + floor(random() * 4)::int AS pf,
           (100000 + floor(random() * 900000))::int AS uid
    FROM generate_series(1, n) AS i
  ) AS e
  CROSS JOIN LATERAL (SELECT
    jsonb_build_object('user_id', e.uid,
                       'country', (ARRAY['DE','US','FR','GB','BR','IN','ES','IT','PL','NL'])[e.c],
                       'platform', (ARRAY['android','ios','web','android'])[e.pf])
    || CASE e.t
         WHEN 'api_call' THEN jsonb_build_object('status', (ARRAY[200,200,200,404])[e.pf])
         WHEN 'search' THEN jsonb_build_object('query', 'item ' || (e.uid % 2000))
         WHEN 'login' THEN jsonb_build_object('method', (ARRAY['password','google','apple','password'])[e.pf])
         WHEN 'order_placed' THEN jsonb_build_object('order_id', 'o-' || e.uid, 'amount', round((5 + random() * 195)::numeric, 2),
                                                     'currency', (ARRAY['EUR','EUR','USD','GBP'])[e.pf], 'items', 1 + e.uid % 5)
         WHEN 'add_to_cart' THEN jsonb_build_object('sku', e.uid % 9000, 'quantity', 1 + e.uid % 3)
         WHEN 'checkout_started' THEN jsonb_build_object('cart_value', round((5 + random() * 195)::numeric, 2))
         WHEN 'registration_attempt' THEN jsonb_build_object('source', (ARRAY['organic','ads','referral','organic'])[e.pf])
         WHEN 'registration_success' THEN jsonb_build_object('source', (ARRAY['organic','ads','referral','organic'])[e.pf])
         WHEN 'user_registration' THEN jsonb_build_object('source', (ARRAY['organic','ads','referral','organic'])[e.pf], 'plan', 'free')
         WHEN 'error' THEN jsonb_build_object('code', 'E' || (e.uid % 50), 'message', 'request failed: upstream timeout')
         WHEN 'email_open' THEN jsonb_build_object('campaign', 'c' || (e.uid % 20))
         WHEN 'email_click' THEN jsonb_build_object('campaign', 'c' || (e.uid % 20), 'link', 'cta')
         WHEN 'payment_failed' THEN jsonb_build_object('reason', (ARRAY['card_declined','insufficient_funds','3ds_failed','card_declined'])[e.pf])
         WHEN 'feature_used' THEN jsonb_build_object('feature', 'f' || (e.uid % 30))
         ELSE '{}'::jsonb
       END AS payload) AS p;
  GET DIAGNOSTICS inserted = ROW_COUNT;
  RETURN inserted;
END $$;

-- Times a statement server-side (no client transfer): median of reps runs, in ms.
CREATE OR REPLACE FUNCTION bench_time_ms(q text, reps int DEFAULT 3) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
  t timestamptz;
  ms float8[] := '{}';
BEGIN
  FOR i IN 1..reps LOOP
    t := clock_timestamp();
    EXECUTE q;
    ms := ms || extract(epoch FROM clock_timestamp() - t) * 1000;
  END LOOP;
  RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(ms) AS x);
END $$;

-- The original algorithm (DESIGN §2, §9.4), one event type, one minute per transaction:
-- count the minute's unprocessed rows of the type, upsert the count, mark the minute's rows
-- processed. Runs minutes
-- [t0, t1) in order and stops early after budget_s seconds; writes one row per minute to
-- bench_original_log (ms, rows counted, WAL bytes).
CREATE TABLE IF NOT EXISTS bench_original_log (
  run text, minute timestamptz, ms float8, counted bigint, updated bigint, wal bigint, events_all bigint);

CREATE OR REPLACE PROCEDURE bench_original(run text, etype text, t0 timestamptz, t1 timestamptz, budget_s float8)
LANGUAGE plpgsql AS $$
DECLARE
  m timestamptz := t0;
  started timestamptz := clock_timestamp();
  t timestamptz;
  lsn pg_lsn;
  n bigint;
  u bigint;
  ms float8;
  w bigint;
BEGIN
  WHILE m < t1 AND extract(epoch FROM clock_timestamp() - started) < budget_s LOOP
    lsn := pg_current_wal_insert_lsn();
    t := clock_timestamp();
    SELECT count(*) INTO n FROM business_events
     WHERE event_type = etype AND event_timestamp >= m AND event_timestamp < m + interval '1 minute'
       AND NOT is_processed;
    INSERT INTO aggregated_metrics (metric_name, metric_timestamp, metric_value)
    VALUES ('original_' || etype, m, n)
    ON CONFLICT (metric_name, series, metric_timestamp) DO UPDATE SET metric_value = EXCLUDED.metric_value;
    -- the original marked every event row of the run processed, whatever its type (DESIGN §2)
    UPDATE business_events SET is_processed = true
     WHERE event_timestamp >= m AND event_timestamp < m + interval '1 minute' AND NOT is_processed;
    GET DIAGNOSTICS u = ROW_COUNT;
    COMMIT;
    ms := extract(epoch FROM clock_timestamp() - t) * 1000;
    w := pg_wal_lsn_diff(pg_current_wal_insert_lsn(), lsn);
    INSERT INTO bench_original_log VALUES (run, m, ms, n, u, w,
      (SELECT count(*) FROM business_events WHERE event_timestamp >= m AND event_timestamp < m + interval '1 minute'));
    COMMIT;
    m := m + interval '1 minute';
  END LOOP;
END $$;
