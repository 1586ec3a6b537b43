#!/usr/bin/env bash
# Faults the service survives (DESIGN §17), against the built binary: a PostgreSQL
# failover under pg_auto_failover, a Redis failover under Sentinel, and SQLite on a volume
# that fills (a tmpfs; needs root), each under load,
# each checking that nothing acknowledged was lost or applied twice and that no 500 was
# answered (tests/faults/*.sh; each cleans up after itself). About 2 minutes.
# The tools come from .ci/setup.d/60-ha-packages.sh; missing tools fail under
# REQUIRE_SERVICES=1 and skip otherwise.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export AUTH_BIN=${AUTH_BIN:-$ROOT/target/debug/auth-service}

if ! command -v pg_autoctl >/dev/null || ! command -v redis-sentinel >/dev/null; then
    if [ "${REQUIRE_SERVICES:-0}" = 1 ]; then
        echo "REQUIRE_SERVICES=1 but pg_autoctl or redis-sentinel is missing (.ci/setup.d/60-ha-packages.sh)" >&2
        exit 1
    fi
    echo "skipping: pg_autoctl or redis-sentinel missing"
    exit 0
fi
for script in pg_failover redis_sentinel sqlite_full; do
    echo "== tests/faults/$script.sh"
    timeout 300 bash "$ROOT/tests/faults/$script.sh"
done
