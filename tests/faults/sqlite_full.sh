#!/usr/bin/env bash
# SQLite on a volume that fills (DESIGN §17): a 24 MiB tmpfs holds the database; the
# retrying credits client runs while a file fills the volume. Writes answer 503
# storage_full (never 500), reads are served, and once the file is removed the retried
# operations go through; after: PRAGMA integrity_check is ok, every acknowledged
# operation is in the ledger exactly once, `ledger verify` passes.
source "$(dirname "$0")/lib.sh"

VOLUME="$WORK/volume"
mkdir -p "$VOLUME"
mount -t tmpfs -o size=24m tmpfs "$VOLUME" || { echo "cannot mount a tmpfs (needs root)" >&2; exit 1; }
trap 'cp -a "$VOLUME" "$WORK/volume-copy" 2>/dev/null; umount -l "$VOLUME" 2>/dev/null || true; cleanup' EXIT INT TERM

DB="$VOLUME/auth.db"
serve service DATABASE_URL="sqlite://$DB"
accounts 4 "$WORK/accounts.json"
start client python3 "$HERE/client.py" "$SERVICE_URL" "$WORK/accounts.json" "$WORK/stop" "$WORK/report.json"
sleep 3

echo "== filling the volume"
FULL_AT=$(date +%s.%N)
dd if=/dev/zero of="$VOLUME/filler" bs=64k 2>/dev/null || true
dd if=/dev/zero of="$VOLUME/filler2" bs=512 2>/dev/null || true
df -h "$VOLUME" | tail -1
sleep 4
access=$(python3 -c "import json; print(json.load(open('$WORK/accounts.json'))[0]['access'])")
# A write may still fit (the WAL reuses its space after a checkpoint): try until refused.
for ((i = 0; i < 200; i++)); do
    full_answer=$(curl -s -X POST "$SERVICE_URL/credits/use" -H "Authorization: Bearer $access" \
        -H 'Content-Type: application/json' -d "{\"amount\":1,\"reference_id\":\"probe-full-$i\"}" -w ' %{http_code}')
    case $full_answer in *' 503') break ;; esac
done
echo "a write while full: $full_answer"
read_status=$(curl -s -o /dev/null -w '%{http_code}' "$SERVICE_URL/credits/balance" -H "Authorization: Bearer $access")
echo "a read while full: $read_status"
[ "$read_status" = 200 ] || { echo "FAIL: reads not served on a full disk"; exit 1; }

echo "== space returns"
rm -f "$VOLUME/filler" "$VOLUME/filler2"
FREED_AT=$(date +%s.%N)
sleep 4
touch "$WORK/stop"
wait_until 60 "the client to finish" test -s "$WORK/report.json"
python3 -c "import sqlite3; c=sqlite3.connect('$DB'); print('rows while serving:', c.execute('select count(*) from credit_transactions').fetchone()[0])"
ls -la "$VOLUME"
kill -TERM "$(cat "$WORK/service.pid")" 2>/dev/null || true
sleep 2
ls -la "$VOLUME"
python3 -c "import sqlite3; c=sqlite3.connect('$DB'); print('rows after stop:', c.execute('select count(*) from credit_transactions').fetchone()[0])"

python3 - "$WORK/report.json" "$DB" "$FULL_AT" "$FREED_AT" <<'PY'
import json, sqlite3, sys
report, db = json.load(open(sys.argv[1])), sys.argv[2]
full_at, freed_at = float(sys.argv[3]), float(sys.argv[4])
conn = sqlite3.connect(db)
check = conn.execute("PRAGMA integrity_check").fetchone()[0]
print("integrity_check:", check)
acked = report["acknowledged"]
missing = sum(1 for user, ref, _ in acked if conn.execute(
    "SELECT count(*) FROM credit_transactions WHERE user_id = ? AND reference_id = ?",
    (user, ref)).fetchone()[0] != 1)
doubled = conn.execute("SELECT count(*) FROM (SELECT 1 FROM credit_transactions WHERE "
    "reference_id LIKE 'fault-%' GROUP BY user_id, reference_id HAVING count(*) > 1)").fetchone()[0]
print("statuses:", report["statuses"])
print(f"acknowledged {len(acked)}, missing {missing}, doubled {doubled}")
after = [t for _, _, t in acked if t > freed_at]
fail = []
if check != "ok": fail.append("integrity_check")
if missing or doubled: fail.append("ledger")
if report["errors_500"]: fail.append(f"500 answered: {report['errors_500'][:2]}")
if "503" not in report["statuses"]: fail.append("the full volume never refused a write")
if not after: fail.append("writes did not resume")
if fail: sys.exit("FAIL: " + "; ".join(fail))
PY
grep -q '"code":"storage_full"' <<<"$full_answer" || { echo "FAIL: a write while full was not storage_full"; exit 1; }
env -i PATH="$PATH" DATABASE_URL="sqlite://$DB" DATA_DIR="$WORK/service-data" \
    SECRET_KEY=fault-test-secret-key-0123456789abcdef "$AUTH_BIN" ledger verify
echo "PASS: SQLite on a full volume"
