#!/usr/bin/env bash
# Installs what the tests need: npm packages, Debian packages, FerretDB, Toxiproxy, and a running Redis.
# Safe to run again; each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== npm ci"
npm ci --no-audit --no-fund

export PATH="$PATH:$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"
APT_PACKAGES=(python3-django python3-djangorestframework python3-djangorestframework-simplejwt chromium redis-server)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# A plain `go install` of v1.24.2 panics at start; the script builds the same source correctly.
bash scripts/install-ferretdb.sh
# The TCP fault proxy of tests/durability/mongo-faults.test.ts (tests/helpers/toxiproxy.ts starts it).
bash scripts/install-toxiproxy.sh

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "== starting redis-server"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
