#!/usr/bin/env bash
# Creates (or updates) the Cloud Scheduler job that ticks aggregate every minute: the gcloud
# equivalent of aggregate-tick.yaml (tests/deploy/check_scheduler.py checks they agree), for
# projects without Config Connector.
#
#   knative/cloud-scheduler/create-job.sh PROJECT_ID REGION AGGREGATE_URL
#   e.g. ... my-project europe-west1 https://aggregate.bizpulse.example.com
#
# The shared secret is read from Secret Manager (secret bizpulse-scheduler-token; the same
# value is in the Kubernetes Secret bizpulse-scheduler) and handed to gcloud in a mode-600
# flags file that is deleted on exit: it is never on a command line or in the repository.
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 PROJECT_ID REGION AGGREGATE_URL" >&2
  exit 2
fi
project=$1
region=$2
url=${3%/}/
job=bizpulse-aggregate-tick

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 077

gcloud secrets versions access latest --secret=bizpulse-scheduler-token --project="$project" \
  --out-file="$tmp/token"
token=$(cat "$tmp/token")
if [ -z "$token" ] || [[ "$token" == *[$'\n\r"\\']* ]]; then
  echo "$0: secret bizpulse-scheduler-token is empty or has a newline, quote or backslash" >&2
  exit 1
fi

common=(
  --project="$project" --location="$region"
  --schedule="* * * * *" --time-zone="Etc/UTC"
  --uri="$url" --http-method=POST
  --attempt-deadline=60s --max-retry-attempts=0
  --description="bizpulse aggregate tick (every minute)"
)
if gcloud scheduler jobs describe "$job" --project="$project" --location="$region" >/dev/null 2>&1; then
  printf -- '--update-headers: "X-Bizpulse-Scheduler-Token=%s"\n' "$token" >"$tmp/flags.yaml"
  gcloud scheduler jobs update http "$job" "${common[@]}" --flags-file="$tmp/flags.yaml"
else
  printf -- '--headers: "X-Bizpulse-Scheduler-Token=%s"\n' "$token" >"$tmp/flags.yaml"
  gcloud scheduler jobs create http "$job" "${common[@]}" --flags-file="$tmp/flags.yaml"
fi
echo "job $job: POST $url every minute (Etc/UTC)"
