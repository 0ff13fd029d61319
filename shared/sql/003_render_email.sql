-- Render: the email of each incident report, sent once per incident state (issue 6).
-- email_status: 'none' (no recipients), 'pending' (due at email_next_at), 'sending' (claimed by
-- a replica until email_lease_until; a replica that died mid-send leaves it to expire),
-- 'sent', 'failed' (gave up after the last attempt; email_error says why).
ALTER TABLE incident_reports ADD COLUMN IF NOT EXISTS email_to TEXT;
ALTER TABLE incident_reports ADD COLUMN IF NOT EXISTS email_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incident_reports ADD COLUMN IF NOT EXISTS email_next_at TIMESTAMPTZ;
ALTER TABLE incident_reports ADD COLUMN IF NOT EXISTS email_lease_until TIMESTAMPTZ;
ALTER TABLE incident_reports ADD COLUMN IF NOT EXISTS email_claim TEXT;
ALTER TABLE incident_reports ADD COLUMN IF NOT EXISTS email_sent_at TIMESTAMPTZ;
ALTER TABLE incident_reports ADD CONSTRAINT incident_reports_email_status_check
    CHECK (email_status IN ('none', 'pending', 'sending', 'sent', 'failed'));
CREATE INDEX IF NOT EXISTS incident_reports_email_due_idx ON incident_reports (email_next_at)
    WHERE email_status IN ('pending', 'sending');
