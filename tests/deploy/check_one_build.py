#!/usr/bin/env python3
"""scripts/build.sh is the one build command: the README, scripts/demo.sh, scripts/test.sh and
the Dockerfile all use it and none runs `meson setup` / `meson compile` itself, so the image
and the README cannot drift apart (issue 7: "the build steps in the Dockerfile must be the
same commands the README uses").

    check_one_build.py SOURCE_ROOT
"""
import os
import re
import sys

from deploylib import Failures

USERS = ('README.md', 'scripts/demo.sh', 'scripts/test.sh', 'Dockerfile')
DIRECT = re.compile(r'^(?!\s*#).*\bmeson\s+(setup|compile)\b', re.M)


def main():
    root = sys.argv[1]
    f = Failures('one build command')
    build = os.path.join(root, 'scripts', 'build.sh')
    f.check(os.access(build, os.X_OK), 'scripts/build.sh is missing or not executable')
    for rel in USERS:
        path = os.path.join(root, rel)
        if not f.check(os.path.isfile(path), f'{rel} is missing'):
            continue
        with open(path, encoding='utf-8') as fh:
            text = fh.read()
        f.check('scripts/build.sh' in text, f'{rel} does not build with scripts/build.sh')
        direct = [m.group(0).strip() for m in DIRECT.finditer(text)]
        f.check(not direct, f'{rel} runs meson itself instead of scripts/build.sh: {direct}')
    f.report()


if __name__ == '__main__':
    main()
