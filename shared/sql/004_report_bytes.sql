-- Render: the PDF bytes of each incident report, so any replica can serve or e-mail it. The
-- file in BIZPULSE_REPORT_DIR (a per-pod emptyDir in Knative) is only a local cache now, and
-- `path` says where the replica that built the report cached it. NULL for reports recorded
-- before this migration: those exist only as that file. Default storage (compressed) on
-- purpose: libharu's output still halves under TOAST's compression (0.55 MB to 0.27 MB).
ALTER TABLE incident_reports ADD COLUMN IF NOT EXISTS pdf BYTEA;
