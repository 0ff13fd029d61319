#!/usr/bin/env python3
"""The CloudEvent types in the C sources equal the event routing in the manifests.

    check_event_types.py SOURCE_ROOT

From the C sources:
  - the types: every `#define BP_CE_TYPE_<X> "<type>"` in shared/cloudevents.h;
  - what each function accepts: the BP_CE_TYPE_* macros functions/<fn>/*.c compare an
    incoming event's type with (`strcmp(ev->type, BP_CE_TYPE_X)`); what it emits: the other
    BP_CE_TYPE_* macros it uses (`.type = BP_CE_TYPE_X`, `emit(..., BP_CE_TYPE_X, ...)`);
  - its event source: bp_app_source's format in shared/app.c applied to the service name
    functions/<fn>/main.c passes to bp_app_init.
From each overlay built with kubectl kustomize: the Triggers, PingSources, SinkBinding and
Knative Services (a Service runs function <fn> when its command is bizpulse-<fn>).

Checked, for every overlay:
  - every Trigger filters on a type some function emits, with that function's source, and
    delivers it to a function that accepts it;
  - every type a function accepts and another function emits has a Trigger to it;
  - a type a function accepts that no function emits is Knative's PingSource type, and the
    function is ticked by a PingSource in the overlay or is public and token-protected for
    Cloud Scheduler;
  - every function that emits events gets K_SINK = the Broker of the Triggers (SinkBinding).
The script then renames a type in a copy of the C side, and in a copy of the manifests, and
requires that each rename is caught: a rename in one place only must fail this test.
"""
import copy
import glob
import os
import re
import sys

from deploylib import OVERLAYS, Failures, env_of, function_of, ksvc, kustomize, labels_match

PING_TYPE = 'dev.knative.sources.ping'  # fixed by Knative's PingSource (sources.knative.dev/v1)
FUNCTIONS = ('aggregate', 'detect', 'render')

DEFINE = re.compile(r'^\s*#\s*define\s+(BP_CE_TYPE_\w+)\s+"([^"]+)"', re.M)
COMPARE = re.compile(r'strcmp\s*\(\s*(?:[\w\->.]*type\s*,\s*(BP_CE_TYPE_\w+)|(BP_CE_TYPE_\w+)\s*,\s*[\w\->.]*type)\s*\)')
USE = re.compile(r'\b(BP_CE_TYPE_\w+)\b')
APP_INIT = re.compile(r'bp_app_init\s*\(\s*&?\w+\s*,\s*"([^"]+)"')
SOURCE_FMT = re.compile(r'void\s+bp_app_source\s*\([^)]*\)\s*\{[^}]*?snprintf\s*\([^,]+,[^,]+,\s*"([^"]*)"', re.S)


def strip_comments(c):
    c = re.sub(r'/\*.*?\*/', ' ', c, flags=re.S)
    return re.sub(r'//[^\n]*', ' ', c)


def read(path):
    with open(path, encoding='utf-8') as fh:
        return fh.read()


def c_side(root, f):
    """{'types': {macro: type}, 'accepts': {fn: set(type)}, 'emits': {fn: set(type)},
    'source': {fn: source}} from the C sources."""
    types = dict(DEFINE.findall(read(os.path.join(root, 'shared', 'cloudevents.h'))))
    f.check(len(types) >= 4, f'shared/cloudevents.h: expected BP_CE_TYPE_* defines, found {types}')
    m = SOURCE_FMT.search(strip_comments(read(os.path.join(root, 'shared', 'app.c'))))
    fmt = m.group(1) if m else None
    f.check(fmt is not None and fmt.count('%s') == 1,
            'shared/app.c: cannot find bp_app_source\'s "…%s…" source format')
    info = {'types': types, 'accepts': {}, 'emits': {}, 'source': {}}
    for fn in FUNCTIONS:
        code = ''.join(strip_comments(read(p)) for p in sorted(glob.glob(os.path.join(root, 'functions', fn, '*.c'))))
        compared = {a or b for a, b in COMPARE.findall(code)}
        used = set(USE.findall(code))
        unknown = sorted((compared | used) - set(types))
        f.check(not unknown, f'functions/{fn}: uses {unknown}, not defined in shared/cloudevents.h')
        info['accepts'][fn] = {types[x] for x in compared if x in types}
        info['emits'][fn] = {types[x] for x in used - compared if x in types}
        names = APP_INIT.findall(strip_comments(read(os.path.join(root, 'functions', fn, 'main.c'))))
        f.check(len(set(names)) == 1, f'functions/{fn}/main.c: expected one bp_app_init(&app, "<name>"), got {names}')
        if names and fmt:
            info['source'][fn] = fmt.replace('%s', names[0])
    return info


def routing_problems(c, objs):
    """Every mismatch between the C side `c` and the built manifests `objs`, as strings."""
    problems = []
    services = ksvc(objs)
    fn_of = {name: function_of(s) for name, s in services.items()}
    emitters = {}
    for fn, ts in c['emits'].items():
        for t in ts:
            emitters.setdefault(t, set()).add(fn)
    triggers = [o for o in objs if o.get('kind') == 'Trigger']
    brokers = {o['metadata']['name'] for o in objs if o.get('kind') == 'Broker'}
    delivered = set()  # (fn, type)
    trigger_brokers = set()
    for t in triggers:
        name = t['metadata']['name']
        spec = t['spec']
        attrs = (spec.get('filter') or {}).get('attributes') or {}
        etype, source = attrs.get('type'), attrs.get('source')
        ref = (spec.get('subscriber') or {}).get('ref') or {}
        fn = fn_of.get(ref.get('name')) if ref.get('kind') == 'Service' else None
        trigger_brokers.add(spec.get('broker'))
        if spec.get('broker') not in brokers:
            problems.append(f'Trigger {name}: Broker {spec.get("broker")!r} is not in the set')
        if etype is None:
            problems.append(f'Trigger {name}: no type filter (every event would reach {ref.get("name")})')
            continue
        if fn is None:
            problems.append(f'Trigger {name}: subscriber {ref.get("name")!r} is not a bizpulse function')
            continue
        if etype not in emitters:
            problems.append(f'Trigger {name}: filters on type {etype!r}, which no function emits '
                            f'(emitted: {sorted(emitters)})')
        else:
            sources = {c['source'][e] for e in emitters[etype] if e in c['source']}
            if source is not None and source not in sources:
                problems.append(f'Trigger {name}: source filter {source!r}, but {etype} comes from {sorted(sources)}')
        if etype not in c['accepts'][fn]:
            problems.append(f'Trigger {name}: sends {etype!r} to {fn}, which accepts only {sorted(c["accepts"][fn])}')
        delivered.add((fn, etype))
    pings = [o for o in objs if o.get('kind') == 'PingSource']
    for fn, accepted in c['accepts'].items():
        for etype in sorted(accepted):
            if etype in emitters:
                if (fn, etype) not in delivered:
                    problems.append(f'{fn} accepts {etype!r} (emitted by {sorted(emitters[etype])}) '
                                    f'but no Trigger delivers it')
                continue
            if etype != PING_TYPE:
                problems.append(f'{fn} accepts {etype!r}, which neither a function nor a PingSource '
                                f'({PING_TYPE}) sends')
                continue
            pinged = any(fn_of.get(((p['spec'].get('sink') or {}).get('ref') or {}).get('name')) == fn for p in pings)
            svc = next((s for n, s in services.items() if fn_of[n] == fn), None)
            scheduled = svc is not None and \
                svc['metadata'].get('labels', {}).get('networking.knative.dev/visibility') != 'cluster-local' and \
                'BIZPULSE_SCHEDULER_TOKEN' in env_of(svc)
            if not (pinged or scheduled):
                problems.append(f'{fn} accepts {PING_TYPE} but no PingSource targets it, nor is it public '
                                f'with BIZPULSE_SCHEDULER_TOKEN for Cloud Scheduler')
    bindings = [o for o in objs if o.get('kind') == 'SinkBinding']
    for fn in sorted(f for f, ts in c['emits'].items() if ts):
        for name, svc in services.items():
            if fn_of[name] != fn:
                continue
            bound = [b for b in bindings
                     if b['spec']['subject'].get('kind') == 'Service' and
                     (b['spec']['subject'].get('name') == name or
                      labels_match(b['spec']['subject'].get('selector', {}).get('matchLabels'),
                                   svc['metadata'].get('labels', {})))]
            if 'K_SINK' in env_of(svc):
                continue
            if not bound:
                problems.append(f'{fn} (Service {name}) emits events but no SinkBinding gives it K_SINK')
            for b in bound:
                sink = (b['spec'].get('sink') or {}).get('ref') or {}
                if sink.get('kind') != 'Broker' or sink.get('name') not in trigger_brokers:
                    problems.append(f'SinkBinding {b["metadata"]["name"]}: sink {sink} is not the Broker '
                                    f'the Triggers read ({sorted(trigger_brokers)})')
    return problems


def main():
    root = sys.argv[1]
    f = Failures('cloudevent types')
    c = c_side(root, f)
    for fn in FUNCTIONS:
        print(f'{fn}: source {c["source"].get(fn)}; accepts {sorted(c["accepts"][fn])}; emits {sorted(c["emits"][fn])}')
    f.check(any(c['accepts'].values()) and any(c['emits'].values()),
            'found no accepted or no emitted types in functions/*/*.c: the extraction is broken')
    built = {}
    for target in OVERLAYS:
        objs, _ = kustomize(root, target)
        built[target] = objs
        problems = routing_problems(c, objs)
        f.check(not problems, f'{target}: the Triggers do not match the C sources')
        for p in problems:
            print(f'  {target}: {p}')
        n = sum(1 for o in objs if o.get('kind') == 'Trigger')
        print(f'{target}: {n} Triggers, {"ok" if not problems else f"{len(problems)} problems"}')
        emitted = set().union(*c['emits'].values())
        routed = {((o['spec'].get('filter') or {}).get('attributes') or {}).get('type')
                  for o in objs if o.get('kind') == 'Trigger'}
        for t in sorted(emitted - routed):
            print(f'  note: {t} is emitted but no Trigger routes it (no function accepts it)')

    # The test must notice a rename on either side: try one of each.
    target = OVERLAYS[0]
    renamed_type = sorted(set().union(*c['accepts'].values()) & set().union(*c['emits'].values()))
    if f.check(bool(renamed_type), 'no type is both emitted and accepted: nothing flows through the Broker'):
        old = renamed_type[0]
        new = old.replace('.v1', '.v2') if '.v1' in old else old + '.renamed'
        c2 = copy.deepcopy(c)
        for side in ('accepts', 'emits'):
            for fn in c2[side]:
                c2[side][fn] = {new if t == old else t for t in c2[side][fn]}
        f.check(bool(routing_problems(c2, built[target])),
                f'self-test: renaming {old} to {new} in the C sources only went unnoticed')
        objs2 = copy.deepcopy(built[target])
        for o in objs2:
            attrs = ((o.get('spec') or {}).get('filter') or {}).get('attributes') or {}
            if o.get('kind') == 'Trigger' and attrs.get('type') == old:
                attrs['type'] = new
        f.check(bool(routing_problems(c, objs2)),
                f'self-test: renaming {old} to {new} in the Triggers only went unnoticed')
        print(f'self-test: renaming {old} on one side only is caught')
    f.report()


if __name__ == '__main__':
    main()
