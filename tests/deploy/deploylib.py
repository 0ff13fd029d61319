"""Helpers shared by the offline deployment checks in tests/deploy/.

Each check is a small program run by meson (suite 'deploy'); it prints what it checked and
exits 1 on the first class of failure, listing every problem found. No network, no cluster,
no Docker engine.
"""
import os
import shutil
import subprocess
import sys

import yaml

OVERLAYS = ('overlays/dev', 'overlays/prod')
# Every kustomization the guide applies (kubectl apply -k ...).
TARGETS = OVERLAYS + ('cloud-scheduler',)


class Failures:
    """Collects problems; report() prints them and exits 1 if there is any."""

    def __init__(self, name):
        self.name = name
        self.problems = []
        self.checked = 0

    def check(self, ok, message):
        self.checked += 1
        if not ok:
            self.problems.append(message)
        return ok

    def fail(self, message):
        self.check(False, message)

    def report(self):
        for p in self.problems:
            print(f'FAIL: {p}')
        if self.problems:
            print(f'{self.name}: {len(self.problems)} of {self.checked} checks failed')
            sys.exit(1)
        print(f'{self.name}: all {self.checked} checks passed')
        sys.exit(0)


def kubectl():
    """The kubectl to use: $KUBECTL, else the one on PATH. Exits 1 (not a skip) when none."""
    k = os.environ.get('KUBECTL') or shutil.which('kubectl')
    if not k:
        print('FAIL: kubectl not found, so the manifests cannot be built (kubectl kustomize).\n'
              '  Install it with scripts/deps.sh (Debian 12: the kubernetes-client package from\n'
              '  the main archive), or set KUBECTL=/path/to/kubectl.')
        sys.exit(1)
    return k


def kustomize(source_root, target):
    """Builds knative/<target> with `kubectl kustomize`; returns the list of objects.
    Exits 1 with kubectl's output when the build fails."""
    path = os.path.join(source_root, 'knative', target)
    r = subprocess.run([kubectl(), 'kustomize', path], capture_output=True, text=True)
    if r.returncode != 0:
        print(f'FAIL: kubectl kustomize {path} exited {r.returncode}:\n{r.stderr}{r.stdout}')
        sys.exit(1)
    return [d for d in yaml.safe_load_all(r.stdout) if d], r.stdout


def load_yaml_file(path):
    with open(path, encoding='utf-8') as f:
        return [d for d in yaml.safe_load_all(f) if d]


def ksvc(objs):
    """Knative Services by name."""
    return {o['metadata']['name']: o for o in objs
            if o.get('apiVersion') == 'serving.knative.dev/v1' and o.get('kind') == 'Service'}


def container(svc):
    return svc['spec']['template']['spec']['containers'][0]


def function_of(svc):
    """'aggregate' / 'detect' / 'render' for a Service running a bizpulse binary, else None."""
    cmd = container(svc).get('command') or []
    if not cmd:
        return None
    base = os.path.basename(cmd[0])
    return base[len('bizpulse-'):] if base.startswith('bizpulse-') else None


def env_of(svc):
    """The container's env as {name: entry}."""
    return {e['name']: e for e in container(svc).get('env', [])}


def annotations(svc):
    return svc['spec']['template'].get('metadata', {}).get('annotations', {}) or {}


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())
