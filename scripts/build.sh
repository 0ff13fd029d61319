#!/usr/bin/env bash
# The one way to build bizpulse: the README, scripts/demo.sh, scripts/test.sh and the
# Dockerfile's build stage all call this, so they build the same binaries the same way.
# It does not install anything: run scripts/deps.sh first (the Dockerfile installs the same
# packages with apt-get itself).
#
#   ./scripts/build.sh [BUILDDIR] [meson options...]
#
#   BUILDDIR        build directory, relative to the source root or absolute (default: build)
#   meson options   passed to `meson setup` the first time and to `meson configure` after,
#                   e.g. -Dtests=false -Dsanitize_all=true --buildtype=release
#
# Output: BUILDDIR/functions/{aggregate,detect,render}/bizpulse-{aggregate,detect,render}.
# `meson install -C BUILDDIR` then puts the three binaries in <prefix>/bin.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

builddir=${1:-build}
if [ $# -gt 0 ]; then
  shift
fi

if [ -f "$builddir/build.ninja" ]; then
  if [ $# -gt 0 ]; then
    meson configure "$builddir" "$@"
  fi
else
  meson setup "$builddir" "$@"
fi
meson compile -C "$builddir"
