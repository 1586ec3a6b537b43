#!/usr/bin/env bash
# The high-availability tools the fault checks (.ci/checks.d/70-faults.sh) run against:
# pg_auto_failover for PostgreSQL 15 and Redis Sentinel, from Debian. Idempotent; needs
# root and apt (skipped with a message otherwise, and the fault check then fails under
# REQUIRE_SERVICES=1).
set -euo pipefail

if command -v pg_autoctl >/dev/null && command -v redis-sentinel >/dev/null \
    && [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
    echo "pg_auto_failover and redis-sentinel already installed"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "cannot install postgresql-15-auto-failover and redis-sentinel (needs root and apt-get)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql-15-auto-failover redis-sentinel >/dev/null
echo "installed: $(pg_autoctl --version 2>/dev/null | head -1); $(redis-sentinel --version | head -1)"
