#!/usr/bin/env bash
# Installs what building, the demo and the tests need on Debian 12 (clang, libclang-rt-dev for
# libFuzzer and llvm for llvm-symbolizer: the fuzz pass of scripts/test.sh). Idempotent: packages
# already present are not fetched again, so a second run costs one dpkg query.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config git ca-certificates
  libh2o-evloop-dev libpq-dev libcjson-dev libcairo2-dev libhpdf-dev
  libcurl4-openssl-dev libpng-dev zlib1g-dev
  postgresql-15 postgresql-client-15
  python3 python3-aiosmtpd python3-matplotlib curl
  poppler-utils qpdf fonts-dejavu-core fonts-wqy-zenhei
  python3-yaml python3-jsonschema
  clang libclang-rt-dev llvm
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# kubectl, for the deployment tests (kubectl kustomize): any kubectl on PATH will do (e.g. the
# Google Cloud SDK's `kubectl` package); else Debian 12's own, `kubernetes-client` (1.20, from
# the main archive; knative/ is written for its kustomize too).
if ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubernetes-client)
fi
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages (${missing[*]}); run as root or install them" >&2
  exit 1
fi
# The Debian package would create and start a default cluster; bizpulse runs its own throwaway
# clusters, so an idle system one on port 5432 is only in the way.
mkdir -p /etc/postgresql-common
if [ ! -f /etc/postgresql-common/createcluster.conf ]; then
  echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
