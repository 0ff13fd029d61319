#!/usr/bin/env python3
"""The gcloud script and the Config Connector manifest create the same Cloud Scheduler job,
and the header they authenticate with is the one aggregate checks.

    check_scheduler.py SOURCE_ROOT

Runs knative/cloud-scheduler/create-job.sh against a stand-in `gcloud` (first on PATH) that
records its arguments: once as a create (no job yet), once as an update. Compares the flags
with the CloudSchedulerJob built by `kubectl kustomize knative/cloud-scheduler`, checks the
token travels only in the flags file (never on a command line) and that the header name is
the one functions/aggregate/main.c reads.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

from deploylib import Failures, kustomize

TOKEN = 'test-token-3b1f'
FAKE_GCLOUD = r'''#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
rec = {'args': args}
for a in args:
    if a.startswith('--flags-file='):
        rec['flags_file'] = open(a.split('=', 1)[1]).read()
    if a.startswith('--out-file='):
        with open(a.split('=', 1)[1], 'w') as f:
            f.write(os.environ['FAKE_TOKEN'])
with open(os.environ['FAKE_LOG'], 'a') as f:
    f.write(json.dumps(rec) + '\n')
if args[:3] == ['scheduler', 'jobs', 'describe']:
    sys.exit(0 if os.environ.get('FAKE_EXISTS') == '1' else 1)
'''


def run_script(root, tmp, exists, project, region, url):
    bindir = os.path.join(tmp, 'bin')
    os.makedirs(bindir, exist_ok=True)
    fake = os.path.join(bindir, 'gcloud')
    with open(fake, 'w') as fh:
        fh.write(FAKE_GCLOUD.replace('/usr/bin/env python3', sys.executable, 1))
    os.chmod(fake, 0o755)
    log = os.path.join(tmp, f'gcloud-{exists}.log')
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ['PATH'], FAKE_LOG=log,
               FAKE_TOKEN=TOKEN, FAKE_EXISTS='1' if exists else '0')
    script = os.path.join(root, 'knative', 'cloud-scheduler', 'create-job.sh')
    r = subprocess.run(['bash', script, project, region, url], env=env, capture_output=True, text=True)
    calls = []
    if os.path.exists(log):
        with open(log) as fh:
            calls = [json.loads(line) for line in fh]
    return r, calls


def flags(args):
    out = {}
    for a in args:
        if a.startswith('--') and '=' in a:
            k, v = a[2:].split('=', 1)
            out[k] = v
    return out


def main():
    root = sys.argv[1]
    f = Failures('cloud scheduler')
    objs, _ = kustomize(root, 'cloud-scheduler')
    jobs = [o for o in objs if o.get('kind') == 'CloudSchedulerJob']
    if not f.check(len(jobs) == 1, f'knative/cloud-scheduler: expected one CloudSchedulerJob, got {len(jobs)}'):
        f.report()
    job = jobs[0]
    spec = job['spec']
    http = spec['httpTarget']
    project = job['metadata'].get('annotations', {}).get('cnrm.cloud.google.com/project-id')
    expected = {
        'project': project,
        'location': spec['location'],
        'schedule': spec['schedule'],
        'time-zone': spec.get('timeZone'),
        'uri': http['uri'],
        'http-method': http.get('httpMethod'),
        'attempt-deadline': spec.get('attemptDeadline'),
        'max-retry-attempts': str((spec.get('retryConfig') or {}).get('retryCount')),
        'description': spec.get('description'),
    }
    name = spec.get('resourceID', job['metadata']['name'])
    f.check('headers' not in http, 'aggregate-tick.yaml: holds headers (the token must not be in a manifest)')

    with open(os.path.join(root, 'functions', 'aggregate', 'main.c'), encoding='utf-8') as fh:
        main_c = fh.read().lower()
    header = 'X-Bizpulse-Scheduler-Token'
    f.check(f'"{header.lower()}"' in main_c,
            f'functions/aggregate/main.c does not read the {header} header the scheduler job sends')
    f.check('bizpulse_scheduler_token' in main_c,
            'functions/aggregate/main.c does not read BIZPULSE_SCHEDULER_TOKEN')

    with tempfile.TemporaryDirectory() as tmp:
        for exists, verb, hflag in ((False, 'create', 'headers'), (True, 'update', 'update-headers')):
            r, calls = run_script(root, tmp, exists, project, spec['location'], http['uri'].rstrip('/'))
            if not f.check(r.returncode == 0, f'create-job.sh ({verb}) exited {r.returncode}: {r.stderr}'):
                continue
            act = [c for c in calls if c['args'][:4] == ['scheduler', 'jobs', verb, 'http']]
            if not f.check(len(act) == 1, f'create-job.sh ({verb}): expected one `gcloud scheduler jobs {verb} http`, got {calls}'):
                continue
            call = act[0]
            f.check(call['args'][4] == name, f'create-job.sh ({verb}): job {call["args"][4]!r}, manifest {name!r}')
            got = flags(call['args'])
            for k, v in expected.items():
                f.check(got.get(k) == v, f'create-job.sh ({verb}): --{k}={got.get(k)!r}, manifest says {v!r}')
            ff = yaml.safe_load(call.get('flags_file', '')) or {}
            f.check(ff.get('--' + hflag) == f'{header}={TOKEN}',
                    f'create-job.sh ({verb}): flags file sets {ff}, expected --{hflag}: {header}=<token>')
            f.check(all(TOKEN not in a for c in calls for a in c['args']),
                    f'create-job.sh ({verb}): the token appeared on a gcloud command line')
            print(f'create-job.sh ({verb}): gcloud scheduler jobs {verb} http {name} matches the manifest')

    guide = os.path.join(root, 'docs', 'deploy-gke.md')
    with open(guide, encoding='utf-8') as fh:
        text = fh.read()
    f.check(header in text and 'bizpulse-scheduler-token' in text,
            f'docs/deploy-gke.md: must show how the {header} header gets its value from Secret Manager')
    f.check(re.search(r'create-job\.sh', text) is not None, 'docs/deploy-gke.md: must mention create-job.sh')
    f.report()


if __name__ == '__main__':
    main()
