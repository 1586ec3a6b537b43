#!/usr/bin/env bash
# PostgreSQL failover under load (DESIGN §17): pg_auto_failover (monitor + primary +
# synchronous standby) in a temporary directory on ports 55432-55434, the service on the
# multi-host URL `pg_autoctl show uri` prints, a client spending credits on several
# accounts and retrying every 5xx or dropped request with the same reference_id. The
# primary is killed (SIGKILL, keeper and postgres) and the standby promoted. Then, on the
# new primary: every operation answered 200 is in the ledger exactly once, nothing twice,
# `ledger verify` passes, no 500 was answered; the unavailability window is printed.
source "$(dirname "$0")/lib.sh"

PG_BIN=/usr/lib/postgresql/15/bin
command -v pg_autoctl >/dev/null || { echo "pg_autoctl missing (apt-get install postgresql-15-auto-failover)" >&2; exit 1; }
chown postgres "$WORK"
as_pg() { runuser -u postgres -- env PATH="$PG_BIN:$PATH" PG_CONFIG="$PG_BIN/pg_config" "$@"; }
MONITOR=postgres://autoctl_node@127.0.0.1:55432/pg_auto_failover?sslmode=disable
common=(--auth trust --no-ssl --hostname 127.0.0.1 --pgctl "$PG_BIN/pg_ctl")

echo "== pg_auto_failover monitor on 55432"
start monitor runuser -u postgres -- env PATH="$PG_BIN:$PATH" \
    pg_autoctl create monitor --pgdata "$WORK/monitor" --pgport 55432 "${common[@]}" --run
wait_until 60 "the monitor" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p 55432
wait_until 30 "the monitor's extension" "$PG_BIN/psql" -h 127.0.0.1 -p 55432 -U autoctl_node -d pg_auto_failover -Atc 'select 1 from pgautofailover.formation'
# Detect a dead node in ~3 s rather than ~30 s (the defaults suit a WAN, not this test).
"$PG_BIN/psql" -q -h 127.0.0.1 -p 55432 -U postgres -d pg_auto_failover <<'SQL'
ALTER SYSTEM SET pgautofailover.health_check_period = 1000;
ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000;
ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1;
ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500;
ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 3000;
-- How long the monitor waits for an unreachable primary to demote itself before it
-- promotes the standby (default 30 s); the keeper of a partitioned primary demotes it
-- on its own side (network_partition_timeout).
ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 5000;
SELECT pg_reload_conf();
SQL

node() { # node NAME PORT
    start "$1" runuser -u postgres -- env PATH="$PG_BIN:$PATH" \
        pg_autoctl create postgres --pgdata "$WORK/$1" --pgport "$2" --dbname auth \
        --monitor "$MONITOR" "${common[@]}" --name "$1" --run
}
state_of() { "$PG_BIN/psql" -h 127.0.0.1 -p 55432 -U autoctl_node -d pg_auto_failover -Atc \
    "select reportedstate from pgautofailover.node where nodename = '$1'"; }
is_state() { [ "$(state_of "$1")" = "$2" ]; }

echo "== primary on 55433, synchronous standby on 55434"
node node1 55433
wait_until 90 "node1 single" is_state node1 single
node node2 55434
wait_until 120 "node2 secondary" is_state node2 secondary
wait_until 60 "node1 primary" is_state node1 primary
"$PG_BIN/psql" -h 127.0.0.1 -p 55433 -U postgres -d auth -Atc 'show synchronous_standby_names'

URI=$(as_pg pg_autoctl show uri --formation default --pgdata "$WORK/monitor")
echo "multi-host URL: $URI"

echo "== the service on the multi-host URL"
serve service DATABASE_URL="$URI" PGUSER=postgres DATABASE_CONNECT_TIMEOUT_SECONDS=60
curl -fsS "$SERVICE_URL/health"; echo
accounts 6 "$WORK/accounts.json"

start client python3 "$HERE/client.py" "$SERVICE_URL" "$WORK/accounts.json" "$WORK/stop" "$WORK/report.json"
sleep 5

echo "== SIGKILL the primary (keeper and postgres)"
KILLED_AT=$(date +%s.%N)
kill -KILL -- "-$(cat "$WORK/node1.pid")"
kill -KILL "$(head -1 "$WORK/node1/postmaster.pid")" 2>/dev/null || true
writable() { [ "$("$PG_BIN/psql" -h 127.0.0.1 -p 55434 -U postgres -d auth -Atc 'show transaction_read_only' 2>/dev/null)" = off ]; }
wait_until 90 "node2 promoted (accepting writes)" writable
PROMOTED_AT=$(date +%s.%N)
echo "standby accepts writes $(python3 -c "print(f'{$PROMOTED_AT-$KILLED_AT:.1f}')") s after the kill"
# Load goes on a while on the new primary.
sleep 8
touch "$WORK/stop"
wait_until 60 "the client to finish" test -s "$WORK/report.json"
curl -fsS "$SERVICE_URL/health"; echo

echo "== checks on the new primary"
NEW_URL=postgres://postgres@127.0.0.1:55434/auth
python3 - "$WORK/report.json" "$KILLED_AT" "$PROMOTED_AT" <<'PY' >"$WORK/acked.tsv"
import json, sys
report = json.load(open(sys.argv[1]))
for user, ref, t in report["acknowledged"]:
    print(f"{user}\t{ref}")
PY
counts=$("$PG_BIN/psql" -h 127.0.0.1 -p 55434 -U postgres -d auth -At <<SQL
CREATE TEMP TABLE acked (user_id BIGINT, reference_id TEXT);
\copy acked FROM '$WORK/acked.tsv'
SELECT (SELECT count(*) FROM acked) || ' ' ||
       (SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM credit_transactions t
            WHERE t.user_id = a.user_id AND t.reference_id = a.reference_id)) || ' ' ||
       (SELECT count(*) FROM (SELECT user_id, reference_id FROM credit_transactions
            WHERE reference_id LIKE 'fault-%' GROUP BY 1, 2 HAVING count(*) > 1) d);
SQL
)
read -r acked missing doubled <<<"$(echo "$counts" | tail -1)"
echo "acknowledged $acked, missing $missing, doubled $doubled"
env -i PATH="$PATH" DATABASE_URL="$NEW_URL" DATA_DIR="$WORK/service-data" \
    SECRET_KEY=fault-test-secret-key-0123456789abcdef "$AUTH_BIN" ledger verify

python3 - "$WORK/report.json" "$KILLED_AT" "$PROMOTED_AT" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
killed, promoted = float(sys.argv[2]), float(sys.argv[3])
print("statuses:", report["statuses"])
times = sorted(t for _, _, t in report["acknowledged"])
if not times or times[-1] < promoted:
    sys.exit("FAIL: nothing acknowledged after the promotion")
# The outage: the longest stretch without a 200 that ends after the kill.
gaps = [(b - a, a, b) for a, b in zip(times, times[1:]) if b > killed]
gap, last_ok, first = max(gaps) if gaps else (0.0, killed, killed)
print(f"unavailability window: no 200 for {gap:.1f} s (from +{last_ok - killed:.1f} s to "
      f"+{first - killed:.1f} s after the kill); the standby accepted writes at "
      f"+{promoted - killed:.1f} s; serving again {max(0.0, first - promoted):.1f} s after that")
if report["errors_500"]:
    sys.exit(f"FAIL: {len(report['errors_500'])} answers were 500: {report['errors_500'][:3]}")
if "unexpected" in report["statuses"]:
    sys.exit(f"FAIL: unexpected answers {report['statuses']['unexpected'][:3]}")
if first - promoted > 15:
    sys.exit("FAIL: the service took more than 15 s to serve after the promotion")
PY
[ "$missing" = 0 ] || { echo "FAIL: $missing acknowledged operations lost"; exit 1; }
[ "$doubled" = 0 ] || { echo "FAIL: $doubled operations applied twice"; exit 1; }
[ "$acked" -gt 0 ] || { echo "FAIL: nothing acknowledged"; exit 1; }
echo "PASS: PostgreSQL failover"
