-- bizpulse schema, version 1. The first two tables keep the original system's names and
-- meaning so existing event writers keep working; the rest is bizpulse's own state.

CREATE TABLE IF NOT EXISTS business_events (
    id BIGSERIAL PRIMARY KEY,
    event_type VARCHAR(100) NOT NULL,
    event_timestamp TIMESTAMPTZ NOT NULL,
    payload JSONB,
    is_processed BOOLEAN DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS business_events_ts_type_idx ON business_events (event_timestamp, event_type);
CREATE INDEX IF NOT EXISTS business_events_processed_idx ON business_events (is_processed, event_timestamp);
-- What aggregation reads: one event type over a time range.
CREATE INDEX IF NOT EXISTS business_events_type_ts_idx ON business_events (event_type, event_timestamp);

-- One row per metric, series and interval start. series '' is the metric's total; a dimension
-- combination is 'country=DE,platform=android'.
CREATE TABLE IF NOT EXISTS aggregated_metrics (
    id BIGSERIAL PRIMARY KEY,
    metric_name VARCHAR(100) NOT NULL,
    series TEXT NOT NULL DEFAULT '',
    metric_timestamp TIMESTAMPTZ NOT NULL,
    metric_value DOUBLE PRECISION NOT NULL,
    numerator DOUBLE PRECISION,
    denominator DOUBLE PRECISION,
    is_anomaly BOOLEAN NOT NULL DEFAULT FALSE,
    anomaly_context JSONB,
    anomaly_score DOUBLE PRECISION,
    expected DOUBLE PRECISION,
    lower_bound DOUBLE PRECISION,
    upper_bound DOUBLE PRECISION,
    method TEXT,
    scored_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (metric_name, series, metric_timestamp)
);

-- Per metric: every interval that starts before `watermark` has been aggregated.
CREATE TABLE IF NOT EXISTS metric_watermarks (
    metric_name VARCHAR(100) PRIMARY KEY,
    watermark TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS incidents (
    id BIGSERIAL PRIMARY KEY,
    metric_name VARCHAR(100) NOT NULL,
    series TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    started_at TIMESTAMPTZ NOT NULL,       -- first anomalous interval
    opened_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_anomaly_at TIMESTAMPTZ NOT NULL,
    peak_timestamp TIMESTAMPTZ NOT NULL,
    peak_value DOUBLE PRECISION NOT NULL,
    peak_expected DOUBLE PRECISION,
    method TEXT NOT NULL,
    summary TEXT NOT NULL,
    context JSONB,
    acknowledged_at TIMESTAMPTZ,
    resolved_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One open incident per metric episode, enforced by the database even with N detect replicas.
CREATE UNIQUE INDEX IF NOT EXISTS incidents_one_open_idx ON incidents (metric_name) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS incidents_metric_started_idx ON incidents (metric_name, started_at);

-- A PDF report per incident state ('opened', 'resolved', ...), written once.
CREATE TABLE IF NOT EXISTS incident_reports (
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    state TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    email_status TEXT NOT NULL DEFAULT 'none',
    email_error TEXT,
    PRIMARY KEY (incident_id, state)
);

-- Received CloudEvents, for dedup on (source, id).
CREATE TABLE IF NOT EXISTS processed_events (
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
);

-- Transactional outbox of CloudEvents to send to K_SINK.
CREATE TABLE IF NOT EXISTS outbox (
    seq BIGSERIAL PRIMARY KEY,
    ce_source TEXT NOT NULL,
    ce_id TEXT NOT NULL,
    ce_type TEXT NOT NULL,
    ce_subject TEXT,
    ce_time TIMESTAMPTZ NOT NULL DEFAULT now(),
    data JSONB NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error TEXT,
    sent_at TIMESTAMPTZ,
    UNIQUE (ce_source, ce_id)
);
CREATE INDEX IF NOT EXISTS outbox_due_idx ON outbox (next_attempt_at) WHERE status = 'pending';
