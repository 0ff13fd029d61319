#!/usr/bin/env python3
"""The Dockerfile builds with scripts/build.sh, and its build stage, run outside Docker,
yields the three binaries the manifests start, and they keep the Knative contract.

    check_dockerfile.py SOURCE_ROOT

No Docker engine runs here, so this does what `docker build` would, by hand:
  1. parses the Dockerfile: the build stage's RUN lines must call ./scripts/build.sh (the
     README's build command) and never meson/ninja directly; its apt packages must be among
     scripts/deps.sh's (what the README path installs);
  2. copies the source tree filtered by .dockerignore (the build context) to a temp dir and
     runs the build stage's non-apt RUN commands there, image paths (/src, /build, /out)
     mapped into the temp dir;
  3. checks the runtime stage gets the binaries the knative/ Services name in `command`, and
     that every shared library they need comes from a package the runtime stage installs
     (or one those depend on), judged from this Debian 12 machine's dpkg database;
  4. runs each binary: `--help` prints its usage, `bizpulse-aggregate check-config` accepts
     the metrics file of knative/base/metrics-configmap.yaml, and `serve` on a $PORT of our
     choosing answers GET /healthz 200, /readyz 503 (no database), /metrics 200, and exits 0
     on SIGTERM.
"""
import fnmatch
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from deploylib import Failures, container, function_of, ksvc, load_yaml_file

FUNCTIONS = ('aggregate', 'detect', 'render')
SYSTEM_DIRS = {'usr', 'etc', 'bin', 'sbin', 'lib', 'lib64', 'var', 'tmp', 'dev', 'proc', 'opt', 'sys', 'run'}


# ---- Dockerfile ---------------------------------------------------------------------------

def parse_dockerfile(path):
    """[(stage_name, [(instruction, text), ...])] with continuation lines joined."""
    with open(path, encoding='utf-8') as fh:
        lines = fh.read().split('\n')
    instrs, cur = [], ''
    for line in lines:
        s = line.strip()
        if s.startswith('#') or (not s and not cur):
            continue
        if s.endswith('\\'):
            cur += s[:-1] + ' '
            continue
        cur += s
        if cur.strip():
            word, _, rest = cur.strip().partition(' ')
            instrs.append((word.upper(), rest.strip()))
        cur = ''
    args, stages = {}, []
    for word, rest in instrs:
        if word == 'ARG' and not stages:
            k, _, v = rest.partition('=')
            args[k] = v
        elif word == 'FROM':
            m = re.match(r'(\S+)(?:\s+AS\s+(\S+))?', rest, re.I)
            image = re.sub(r'\$\{?(\w+)\}?', lambda x: args.get(x.group(1), ''), m.group(1))
            stages.append((m.group(2) or str(len(stages)), image, []))
        elif stages:
            stages[-1][2].append((word, rest))
    return stages


def apt_packages(run):
    m = re.search(r'apt-get install\s+(.*?)(?:&&|$)', run)
    return [w for w in m.group(1).split() if not w.startswith('-')] if m else []


def deps_packages(root):
    with open(os.path.join(root, 'scripts', 'deps.sh'), encoding='utf-8') as fh:
        text = fh.read()
    m = re.search(r'^packages=\((.*?)^\)', text, re.S | re.M)
    return set(re.sub(r'#[^\n]*', '', m.group(1)).split()) if m else set()


# ---- build context --------------------------------------------------------------------------

def dockerignore(root, f):
    pats = []
    path = os.path.join(root, '.dockerignore')
    if not f.check(os.path.isfile(path), '.dockerignore is missing'):
        return pats
    with open(path, encoding='utf-8') as fh:
        for line in fh:
            s = line.strip()
            if not s or s.startswith('#'):
                continue
            f.check(not s.startswith('!'), f'.dockerignore: exceptions ({s}) are not simulated by this test')
            pats.append(s.strip('/'))
    return pats


def ignored(rel, pats):
    parts = rel.split('/')
    prefixes = ['/'.join(parts[:i + 1]) for i in range(len(parts))]
    for pat in pats:
        if pat.startswith('**/'):
            sub = pat[3:]
            if any(fnmatch.fnmatchcase(p, sub) for p in parts):
                return True
        elif any(fnmatch.fnmatchcase(p, pat) for p in prefixes):
            return True
    return False


def copy_context(root, dest, pats):
    for dirpath, dirnames, files in os.walk(root):
        reldir = os.path.relpath(dirpath, root)
        reldir = '' if reldir == '.' else reldir
        dirnames[:] = [d for d in dirnames if not ignored(os.path.join(reldir, d).lstrip('/'), pats)]
        os.makedirs(os.path.join(dest, reldir), exist_ok=True)
        for name in files:
            rel = os.path.join(reldir, name).lstrip('/')
            if not ignored(rel, pats):
                shutil.copy2(os.path.join(root, rel), os.path.join(dest, rel), follow_symlinks=False)


def map_paths(cmd, fakeroot):
    """Image-absolute paths (/src, /build, /out...) become paths under fakeroot."""
    def sub(m):
        first = m.group(1).split('/')[1]
        return m.group(1) if first in SYSTEM_DIRS else fakeroot + m.group(1)
    return re.sub(r'(?<![\w./-])(/[\w.-]+(?:/[\w.-]*)*)', sub, cmd)


# ---- runtime libraries ----------------------------------------------------------------------

def dpkg_owner(lib):
    r = subprocess.run(['dpkg', '-S', lib], capture_output=True, text=True)
    owners = set()
    for line in r.stdout.splitlines():
        pkgs, _, path = line.partition(': ')
        if os.path.basename(path.strip()) == lib:
            owners |= {p.strip().split(':')[0] for p in pkgs.split(',')}
    return owners


def depends_closure(pkgs):
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        r = subprocess.run(['dpkg-query', '-W', '-f=${Depends}, ${Pre-Depends}', p], capture_output=True, text=True)
        if r.returncode != 0:
            continue
        for alt in r.stdout.split(','):
            for dep in alt.split('|'):
                name = dep.strip().split(' ')[0].split(':')[0]
                if name:
                    todo.append(name)
    return seen


def needed_libs(binary):
    r = subprocess.run(['readelf', '-d', binary], capture_output=True, text=True)
    return re.findall(r'\(NEEDED\)\s+Shared library: \[([^\]]+)\]', r.stdout)


def package_known(p):
    for cmd in (['dpkg-query', '-W', p], ['apt-cache', 'show', p]):
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            return True
    return False


# ---- running the binaries ---------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def get(port, path):
    try:
        with urllib.request.urlopen(f'http://127.0.0.1:{port}{path}', timeout=5) as r:
            return r.status, r.read().decode('utf-8', 'replace')
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode('utf-8', 'replace')
    except OSError:
        return None, ''


def smoke_serve(f, binary, fn, metrics, tmp, probes):
    port = free_port()
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'PORT': str(port), 'K_SERVICE': fn,
           'BIZPULSE_METRICS': metrics, 'BIZPULSE_REPORT_DIR': os.path.join(tmp, 'reports-' + fn),
           # Nothing listens on port 1: the database is down, as at a cold start before Cloud SQL.
           'DATABASE_URL': 'postgresql://bizpulse@127.0.0.1:1/bizpulse?connect_timeout=1'}
    log = open(os.path.join(tmp, f'{fn}-serve.log'), 'w+')
    p = subprocess.Popen([binary, 'serve'], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline and p.poll() is None:
            status, _ = get(port, probes['livenessProbe'])
            if status == 200:
                break
            time.sleep(0.1)
        f.check(status == 200, f'{fn} serve: GET {probes["livenessProbe"]} on $PORT={port} answered {status}')
        status, _ = get(port, probes['readinessProbe'])
        f.check(status == 503, f'{fn} serve: GET {probes["readinessProbe"]} without a database answered {status}, expected 503')
        status, body = get(port, '/metrics')
        f.check(status == 200 and '# TYPE' in body, f'{fn} serve: GET /metrics answered {status} without Prometheus text')
    finally:
        t0 = time.monotonic()
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        took = time.monotonic() - t0
        log.seek(0)
        out = log.read()
        log.close()
    ok = f.check(rc == 0 and took < 25, f'{fn} serve: SIGTERM → exit {rc} after {took:.1f} s (want 0 within 25 s)')
    if not ok:
        print(out[-3000:])
    print(f'{fn} serve: $PORT honoured, probes answer, SIGTERM → exit {rc} in {took:.1f} s')


# ---- main -------------------------------------------------------------------------------------

def main():
    root = os.path.realpath(sys.argv[1])
    f = Failures('dockerfile build')
    stages = parse_dockerfile(os.path.join(root, 'Dockerfile'))
    names = [s[0] for s in stages]
    copies = [(st, rest) for st in stages for w, rest in st[2] if w == 'COPY' and '--from=' in rest]
    if not f.check(len(stages) >= 2 and copies, f'Dockerfile: expected a build stage and a runtime stage, got {names}'):
        f.report()
    runtime = stages[-1]
    m = re.match(r'--from=(\S+)\s+(\S+)\s+(\S+)', copies[-1][1])
    build_stage = next((s for s in stages if s[0] == m.group(1)), None)
    if not f.check(build_stage is not None, f'Dockerfile: COPY --from={m.group(1)}: no such stage'):
        f.report()
    copy_src, copy_dst = m.group(2), m.group(3)
    f.check(build_stage[1].startswith('debian:12') and runtime[1].startswith('debian:12'),
            f'Dockerfile: both stages on Debian 12 (got {build_stage[1]}, {runtime[1]})')

    workdir, build_runs = '/', []
    deps = deps_packages(root)
    for word, rest in build_stage[2]:
        if word == 'WORKDIR':
            workdir = rest
        elif word == 'RUN':
            if 'apt-get' in rest:
                missing = sorted(set(apt_packages(rest)) - deps)
                f.check(not missing, f'Dockerfile build stage installs {missing}, which scripts/deps.sh does not')
            else:
                build_runs.append(rest)
    joined = ' && '.join(build_runs)
    f.check('./scripts/build.sh' in joined or 'scripts/build.sh' in joined,
            'Dockerfile build stage: no RUN calls scripts/build.sh (the README\'s build command)')
    f.check(not re.search(r'\bmeson\s+(setup|compile|configure)\b|\bninja\b', joined),
            'Dockerfile build stage: calls meson setup/compile or ninja itself instead of scripts/build.sh')
    for w, rest in runtime[2]:
        f.check(not (w in ('ENTRYPOINT', 'CMD') and not rest.startswith('[')),
                f'Dockerfile: {w} {rest} is shell form (needs /bin/sh at run time); use exec form')
        f.check(not (w == 'USER' and not re.match(r'^\d+(:\d+)?$', rest)),
                f'Dockerfile: USER {rest} should be numeric (runAsNonRoot can only verify a numeric user)')
    f.check(any(w == 'USER' and not rest.startswith('0') for w, rest in runtime[2]),
            'Dockerfile: the runtime stage must switch to a non-root USER')
    runtime_pkgs = [p for w, rest in runtime[2] if w == 'RUN' for p in apt_packages(rest)]
    for p in ('fonts-dejavu-core', 'fonts-wqy-zenhei', 'tzdata', 'ca-certificates'):
        f.check(p in runtime_pkgs, f'Dockerfile runtime stage must install {p}')
    for p in runtime_pkgs:
        f.check(package_known(p), f'Dockerfile runtime stage: package {p} unknown to dpkg/apt on Debian 12')

    # Which binaries the manifests start, from the base Services.
    commands = {}
    for path in sorted(glob.glob(os.path.join(root, 'knative', 'base', '*.yaml'))):
        for svc in ksvc(load_yaml_file(path)).values():
            fn = function_of(svc)
            if fn:
                commands[fn] = container(svc)['command'][0]
                probes = {k: container(svc)[k]['httpGet']['path'] for k in ('readinessProbe', 'livenessProbe')}
    f.check(set(commands) == set(FUNCTIONS), f'knative/base: Services start {sorted(commands)}, expected {FUNCTIONS}')
    cms = [o for p in glob.glob(os.path.join(root, 'knative', 'base', '*.yaml')) for o in load_yaml_file(p)
           if o.get('kind') == 'ConfigMap' and 'metrics.json' in o.get('data', {})]

    with tempfile.TemporaryDirectory(prefix='bp-docker-') as tmp:
        fakeroot = os.path.join(tmp, 'root')
        src = fakeroot + workdir
        copy_context(root, src, dockerignore(root, f))
        t0 = time.monotonic()
        for cmd in build_runs:
            mapped = map_paths(cmd, fakeroot)
            print(f'RUN {cmd}\n  as: {mapped}')
            r = subprocess.run(['bash', '-ec', mapped], cwd=src, capture_output=True, text=True)
            if not f.check(r.returncode == 0, f'build stage command failed (exit {r.returncode}): {cmd}'):
                print(r.stdout[-6000:] + r.stderr[-6000:])
                f.report()
        print(f'build stage: {time.monotonic() - t0:.0f} s')
        bindir = map_paths(copy_src, fakeroot)
        for fn, cmd in commands.items():
            f.check(os.path.dirname(cmd).rstrip('/') == copy_dst.rstrip('/'),
                    f'knative/base: {fn} runs {cmd}, but the Dockerfile copies the binaries to {copy_dst}')
        if not f.check(all(os.access(os.path.join(bindir, f'bizpulse-{fn}'), os.X_OK) for fn in FUNCTIONS),
                       f'build stage: {copy_src} lacks some of bizpulse-{{{",".join(FUNCTIONS)}}}: {os.listdir(bindir) if os.path.isdir(bindir) else "missing"}'):
            f.report()

        closure = depends_closure(runtime_pkgs)
        for fn in FUNCTIONS:
            binary = os.path.join(bindir, f'bizpulse-{fn}')
            for lib in needed_libs(binary):
                owners = dpkg_owner(lib)
                f.check(owners & closure,
                        f'bizpulse-{fn} needs {lib} (package {sorted(owners) or "?"}), which the runtime stage does not install')
            # `--help` prints the usage of all three on stdout and exits 0; a clean environment
            # so nothing starts serving.
            r = subprocess.run([binary, '--help'], capture_output=True, text=True, timeout=30,
                               env={'PATH': os.environ.get('PATH', '/usr/bin:/bin')})
            f.check(r.returncode == 0 and f'usage: bizpulse-{fn}' in r.stdout,
                    f'bizpulse-{fn} --help: exit {r.returncode}, no usage line: {r.stdout}{r.stderr}')

        metrics = os.path.join(tmp, 'metrics.json')
        if f.check(len(cms) == 1, 'knative/base: expected one ConfigMap with metrics.json'):
            with open(metrics, 'w', encoding='utf-8') as fh:
                fh.write(cms[0]['data']['metrics.json'])
            r = subprocess.run([os.path.join(bindir, 'bizpulse-aggregate'), 'check-config', metrics],
                               capture_output=True, text=True, timeout=30)
            f.check(r.returncode == 0, f'bizpulse-aggregate check-config rejects the ConfigMap\'s metrics.json: {r.stdout}{r.stderr}')
            for fn in FUNCTIONS:
                smoke_serve(f, os.path.join(bindir, f'bizpulse-{fn}'), fn, metrics, tmp, probes)
    print('note: no Docker engine here; the stages were run by hand as above (docs/deploy-gke.md, "What was verified")')
    f.report()


if __name__ == '__main__':
    main()
