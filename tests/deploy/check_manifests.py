#!/usr/bin/env python3
"""Deployment rules knative-validate does not know, on every overlay built with kubectl
kustomize, plus the kustomization files themselves.

    check_manifests.py SOURCE_ROOT

- Kustomizations use only what kustomize v2.0.3 (kubectl 1.20, Debian 12's
  kubernetes-client) understands, so a clean Debian 12 builds them too.
- The Knative contract (DESIGN §4): one port, 8080; readiness on /readyz, liveness on /healthz;
  BIZPULSE_METRICS points into the mounted metrics ConfigMap.
- Autoscaling: every function has max-scale and BIZPULSE_WORKERS; render's
  containerConcurrency equals its render threads (BIZPULSE_WORKERS); the database connections
  of all replicas, twice over (old and new revision during a rollout), fit DB_BUDGET.
- Secrets: no Secret object, no token/password/database URL as a literal env value, no
  credentials in a literal URL.
- Exposure: detect and the dead-letter sink are cluster-local; render is public and needs its
  token; aggregate is either cluster-local and ticked by a PingSource, or public with
  BIZPULSE_SCHEDULER_TOKEN for Cloud Scheduler (not both, not neither).
- The Broker has retries and a dead-letter sink; the ServiceAccount is annotated for
  Workload Identity and every function runs as it; containers run as non-root.
"""
import json
import os
import re
import sys

import yaml

from deploylib import (OVERLAYS, Failures, annotations, container, env_of, function_of, ksvc,
                       kustomize)

# Connections the functions may hold at once, all replicas at max-scale, twice (a rollout runs
# the old and the new revision side by side). Cloud SQL for PostgreSQL defaults
# max_connections to 100 from 3.75 GB of memory; 20 stay for psql, migrations by hand, the
# Auth Proxy's checks and Cloud SQL's own. docs/deploy-gke.md, "Autoscaling and database connections".
DB_BUDGET = 80

# Fields kustomize v2.0.3 reads (sigs.k8s.io/kustomize v2.0.3 pkg/types/kustomization.go).
KUSTOMIZE_V2_FIELDS = {
    'apiVersion', 'kind', 'namespace', 'namePrefix', 'nameSuffix', 'commonLabels',
    'commonAnnotations', 'resources', 'bases', 'patchesStrategicMerge', 'patchesJson6902',
    'configMapGenerator', 'secretGenerator', 'generatorOptions', 'images', 'vars',
    'configurations', 'crds',
}
SECRET_NAME = re.compile(r'TOKEN|PASSWORD|SECRET|DATABASE_URL|SMTP_URL|SMTP_USER|^PGPASSWORD$')
URL_WITH_PASSWORD = re.compile(r'://[^/@\s]*:[^/@\s]*@')


def check_kustomizations(f, root):
    for dirpath, _, files in os.walk(os.path.join(root, 'knative')):
        if 'kustomization.yaml' not in files:
            continue
        path = os.path.join(dirpath, 'kustomization.yaml')
        rel = os.path.relpath(path, root)
        with open(path, encoding='utf-8') as fh:
            k = yaml.safe_load(fh)
        extra = sorted(set(k) - KUSTOMIZE_V2_FIELDS)
        f.check(not extra, f'{rel}: {extra} unknown to kustomize v2.0.3 (kubectl 1.20, Debian 12); '
                           f'use {sorted(KUSTOMIZE_V2_FIELDS)}')
        for r in k.get('resources', []):
            f.check(os.path.isfile(os.path.join(dirpath, r)),
                    f'{rel}: resources entry {r!r} must be a file (kustomize v2.0.3 takes directories '
                    f'only under bases)')
        for b in k.get('bases', []):
            f.check(os.path.isfile(os.path.join(dirpath, b, 'kustomization.yaml')),
                    f'{rel}: bases entry {b!r} is not a kustomization directory')


def int_annotation(svc, key):
    v = annotations(svc).get('autoscaling.knative.dev/' + key)
    return int(v) if v is not None else None


def check_overlay(f, target, objs):
    services = ksvc(objs)
    fns = {function_of(s): s for s in services.values() if function_of(s)}
    f.check(set(fns) == {'aggregate', 'detect', 'render'},
            f'{target}: expected Services running bizpulse-aggregate, -detect, -render, got {sorted(fns)}')
    configmaps = {o['metadata']['name']: o for o in objs if o.get('kind') == 'ConfigMap'}
    sas = {o['metadata']['name']: o for o in objs if o.get('kind') == 'ServiceAccount'}
    pings = [o for o in objs if o.get('kind') == 'PingSource']

    f.check(not [o for o in objs if o.get('kind') == 'Secret'],
            f'{target}: a Secret object in the manifests (secrets are created from Secret Manager, '
            f'docs/deploy-gke.md step 6)')
    for sa in sas.values():
        wi = sa['metadata'].get('annotations', {}).get('iam.gke.io/gcp-service-account', '')
        f.check(wi.endswith('.iam.gserviceaccount.com'),
                f'{target}: ServiceAccount {sa["metadata"]["name"]} lacks the Workload Identity annotation')

    connections = 0
    for name, svc in services.items():
        c = container(svc)
        spec = svc['spec']['template']['spec']
        env = env_of(svc)
        where = f'{target}: Service {name}'
        f.check(spec.get('serviceAccountName') in sas,
                f'{where}: serviceAccountName {spec.get("serviceAccountName")!r} is not the ServiceAccount of the set')
        sc = c.get('securityContext', {})
        f.check(sc.get('runAsNonRoot') is True and sc.get('allowPrivilegeEscalation') is False,
                f'{where}: must run as non-root without privilege escalation')
        for e in c.get('env', []):
            if 'value' in e:
                f.check(not SECRET_NAME.search(e['name']),
                        f'{where}: {e["name"]} is a literal value; it must come from a Secret (secretKeyRef)')
                f.check(not URL_WITH_PASSWORD.search(str(e['value'])),
                        f'{where}: {e["name"]} holds a URL with a password')
        fn = function_of(svc)
        if fn is None:
            f.check(svc['metadata'].get('labels', {}).get('networking.knative.dev/visibility') == 'cluster-local',
                    f'{where}: helper Services (dead-letter sink) must be cluster-local')
            continue
        ports = c.get('ports', [])
        f.check(len(ports) == 1 and ports[0].get('containerPort') == 8080,
                f'{where}: one port, 8080 (Knative passes it as $PORT), got {ports}')
        probes = {k: ((c.get(k) or {}).get('httpGet') or {}).get('path') for k in ('readinessProbe', 'livenessProbe')}
        f.check(probes == {'readinessProbe': '/readyz', 'livenessProbe': '/healthz'},
                f'{where}: probes must be readiness /readyz and liveness /healthz, got {probes}')
        f.check(c.get('args', ['serve'])[:1] == ['serve'], f'{where}: must run `serve`')
        for k in ('readinessProbe', 'livenessProbe'):
            f.check('port' not in ((c.get(k) or {}).get('httpGet') or {}),
                    f'{where}: {k} must not name a port (Knative probes the serving port)')

        metrics = (env.get('BIZPULSE_METRICS') or {}).get('value', '')
        mounts = {m['mountPath']: m['name'] for m in c.get('volumeMounts', [])}
        vols = {v['name']: v for v in spec.get('volumes', [])}
        vol = vols.get(mounts.get(os.path.dirname(metrics)), {})
        cm = configmaps.get((vol.get('configMap') or {}).get('name'))
        if f.check(cm is not None and os.path.basename(metrics) in cm.get('data', {}),
                   f'{where}: BIZPULSE_METRICS={metrics!r} is not a key of a mounted ConfigMap of the set'):
            try:
                json.loads(cm['data'][os.path.basename(metrics)])
            except ValueError as e:
                f.fail(f'{where}: the metrics file in ConfigMap {cm["metadata"]["name"]} is not JSON: {e}')
        f.check('DATABASE_URL' in env and 'secretKeyRef' in env['DATABASE_URL'].get('valueFrom', {}),
                f'{where}: DATABASE_URL must come from a Secret')

        max_scale = int_annotation(svc, 'max-scale')
        workers = (env.get('BIZPULSE_WORKERS') or {}).get('value')
        if f.check(max_scale is not None and max_scale > 0 and workers is not None,
                   f'{where}: needs autoscaling.knative.dev/max-scale and BIZPULSE_WORKERS (database budget)'):
            # Each worker thread holds one connection, the background thread one more.
            connections += max_scale * (int(workers) + 1)
        cc = spec.get('containerConcurrency')
        if fn == 'render':
            f.check(workers is not None and cc == int(workers),
                    f'{where}: containerConcurrency {cc} must equal BIZPULSE_WORKERS {workers} (CPU-bound render threads)')
            f.check('BIZPULSE_REPORT_DIR' in env and env['BIZPULSE_REPORT_DIR'].get('value') in mounts,
                    f'{where}: BIZPULSE_REPORT_DIR must be a mounted volume (read-only root filesystem)')
        else:
            f.check(cc is not None and workers is not None and cc >= int(workers),
                    f'{where}: containerConcurrency {cc} below BIZPULSE_WORKERS {workers} leaves threads idle')

        local = svc['metadata'].get('labels', {}).get('networking.knative.dev/visibility') == 'cluster-local'
        if fn == 'detect':
            f.check(local, f'{where}: detect must be cluster-local (only the Broker calls it)')
        if fn == 'render':
            tok = (env.get('BIZPULSE_RENDER_TOKEN') or {}).get('valueFrom', {}).get('secretKeyRef', {})
            f.check(not local and tok and not tok.get('optional'),
                    f'{where}: render is public and must require BIZPULSE_RENDER_TOKEN from a Secret')
        if fn == 'aggregate':
            tok = (env.get('BIZPULSE_SCHEDULER_TOKEN') or {}).get('valueFrom', {}).get('secretKeyRef', {})
            pinged = any(((p['spec'].get('sink') or {}).get('ref') or {}).get('name') == name for p in pings)
            if pinged:
                f.check(local and not tok,
                        f'{where}: ticked by a PingSource, so it must be cluster-local and without '
                        f'BIZPULSE_SCHEDULER_TOKEN (a PingSource sends no token)')
            else:
                f.check(not local and tok and not tok.get('optional'),
                        f'{where}: no PingSource, so Cloud Scheduler ticks it: it must be public and '
                        f'require BIZPULSE_SCHEDULER_TOKEN from a Secret')
    f.check(2 * connections <= DB_BUDGET,
            f'{target}: up to {connections} database connections at max-scale, {2 * connections} during '
            f'a rollout, over the budget of {DB_BUDGET}')
    print(f'{target}: {len(services)} Services, at most {connections} DB connections '
          f'({2 * connections} during a rollout; budget {DB_BUDGET})')

    for b in (o for o in objs if o.get('kind') == 'Broker'):
        d = b['spec'].get('delivery', {})
        f.check(d.get('retry', 0) > 0 and d.get('backoffPolicy') and 'deadLetterSink' in d,
                f'{target}: Broker {b["metadata"]["name"]} needs delivery retry, backoff and a dead-letter sink')
        ref = (d.get('deadLetterSink') or {}).get('ref', {})
        f.check(ref.get('name') in services,
                f'{target}: Broker dead-letter sink {ref} is not a Service of the set')


def main():
    root = sys.argv[1]
    f = Failures('manifest rules')
    check_kustomizations(f, root)
    for target in OVERLAYS:
        objs, _ = kustomize(root, target)
        check_overlay(f, target, objs)
    f.report()


if __name__ == '__main__':
    main()
