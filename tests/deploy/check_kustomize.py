#!/usr/bin/env python3
"""Builds one kustomization under knative/ with `kubectl kustomize` and has
../shared/tools/knative-validate --strict accept the output.

    check_kustomize.py SOURCE_ROOT KNATIVE_VALIDATE TARGET     (TARGET: overlays/dev, ...)

knative-validate knows the Knative, Config Connector and core ConfigMap/Secret/
ServiceAccount kinds; the only other kind the manifests may hold is a policy/v1
PodDisruptionBudget, which this script checks itself (it must select the pods of a Knative
Service of the set whose min-scale keeps more pods than the budget's minAvailable, or it would
block node drains). Anything else is a failure.
"""
import os
import subprocess
import sys
import tempfile

import yaml

from deploylib import Failures, annotations, ksvc, kustomize

EXTRA_KINDS = {('policy/v1', 'PodDisruptionBudget')}


def check_pdb(f, pdb, services):
    name = pdb['metadata']['name']
    spec = pdb.get('spec', {})
    f.check(('minAvailable' in spec) != ('maxUnavailable' in spec),
            f'PodDisruptionBudget/{name}: exactly one of minAvailable, maxUnavailable')
    sel = spec.get('selector', {}).get('matchLabels', {})
    f.check(set(sel) == {'serving.knative.dev/service'},
            f'PodDisruptionBudget/{name}: select by serving.knative.dev/service only '
            f'(the label Knative puts on a Service\'s pods), got {sel}')
    target = sel.get('serving.knative.dev/service')
    svc = services.get(target)
    if not f.check(svc is not None, f'PodDisruptionBudget/{name}: no Knative Service {target!r}'):
        return
    f.check(svc['metadata'].get('namespace') == pdb['metadata'].get('namespace'),
            f'PodDisruptionBudget/{name}: not in the namespace of Service {target}')
    min_scale = int(annotations(svc).get('autoscaling.knative.dev/min-scale', '0'))
    min_avail = spec.get('minAvailable')
    if isinstance(min_avail, int):
        f.check(min_scale > min_avail,
                f'PodDisruptionBudget/{name}: minAvailable {min_avail} with min-scale {min_scale} '
                f'of Service {target} blocks node drains (needs min-scale > minAvailable)')


def main():
    source_root, validator, target = sys.argv[1:4]
    f = Failures(f'kustomize {target}')
    objs, _ = kustomize(source_root, target)
    print(f'kubectl kustomize knative/{target}: {len(objs)} objects')
    f.check(len(objs) > 0, f'knative/{target} builds to nothing')

    known, extra = [], []
    for o in objs:
        key = (o.get('apiVersion'), o.get('kind'))
        (extra if key in EXTRA_KINDS else known).append(o)
    services = ksvc(objs)
    for o in extra:
        check_pdb(f, o, services)

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, target.replace('/', '-') + '.yaml')
        with open(out, 'w', encoding='utf-8') as fh:
            yaml.safe_dump_all(known, fh, sort_keys=False)
        r = subprocess.run([sys.executable, validator, '--strict', out], capture_output=True, text=True)
        print(r.stdout + r.stderr, end='')
        f.check(r.returncode == 0,
                f'knative-validate --strict rejected the build of knative/{target} (exit {r.returncode})')
    f.report()


if __name__ == '__main__':
    main()
