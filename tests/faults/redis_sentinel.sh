#!/usr/bin/env bash
# Redis failover through Sentinel (DESIGN §17): a master and a replica (ports 56379,
# 56380) watched by three sentinels (56381-56383); the service on
# REDIS_URL=redis+sentinel://.../mymaster. The master is killed (SIGKILL) and a sentinel
# promotes the replica. Throughout: no 500, logins answered, failed-login throttling
# engaged (429) before, during (in-process fallback) and after the switch, and after it
# the counters are on the new master and /health says redis "ok".
source "$(dirname "$0")/lib.sh"

command -v redis-server >/dev/null || { echo "redis-server missing (apt-get install redis-sentinel)" >&2; exit 1; }
cli() { redis-cli -h 127.0.0.1 -p "$@"; }

start master redis-server --port 56379 --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK"
start replica redis-server --port 56380 --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    --replicaof 127.0.0.1 56379
for port in 56381 56382 56383; do
    cat >"$WORK/sentinel-$port.conf" <<CONF
port $port
bind 127.0.0.1
dir $WORK
sentinel monitor mymaster 127.0.0.1 56379 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
sentinel parallel-syncs mymaster 1
CONF
    start "sentinel-$port" redis-server "$WORK/sentinel-$port.conf" --sentinel
done
master_is() { cli 56381 sentinel get-master-addr-by-name mymaster | tr '\n' ' ' | grep -q "127.0.0.1 $1"; }
wait_until 30 "the sentinels to watch the master" master_is 56379
replica_synced() { cli 56380 info replication | grep -q 'master_link_status:up'; }
wait_until 30 "the replica in sync" replica_synced
sentinels_agree() { [ "$(cli 56381 sentinel master mymaster | grep -A1 '^num-other-sentinels$' | tail -1)" = 2 ]; }
wait_until 30 "the sentinels to know each other" sentinels_agree

serve service DATABASE_URL="sqlite://$WORK/auth.db" \
    REDIS_URL=redis+sentinel://127.0.0.1:56381,127.0.0.1:56382,127.0.0.1:56383/mymaster \
    REDIS_KEY_PREFIX=faults: REDIS_PROBE_INTERVAL_MS=250
curl -fsS "$SERVICE_URL/health"; echo

register() {
    curl -fsS -o /dev/null -X POST "$SERVICE_URL/auth/register" -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"email\":\"$1@example.com\",\"password\":\"password123\"}"
}
login() { # login USER PASSWORD -> status
    curl -s -o /dev/null -w '%{http_code}' -m 10 -X POST "$SERVICE_URL/auth/login" \
        -H 'Content-Type: application/x-www-form-urlencoded' -d "username=$1&password=$2"
}
STATUSES="$WORK/statuses"
: >"$STATUSES"
# guesses USER N: N wrong passwords; prints whether the account got throttled (429).
throttled_after_guesses() {
    local user=$1 n=$2 i s seen=no
    for ((i = 0; i < n; i++)); do
        s=$(login "$user" wrong-password)
        echo "$s" >>"$STATUSES"
        [ "$s" = 429 ] && seen=yes
    done
    [ "$seen" = yes ]
}

for u in before during1 during2 during3 during4 after owner; do register "$u"; done
throttled_after_guesses before 8 || { echo "FAIL: no throttling before the switch"; exit 1; }
echo "throttled before the switch"
cli 56379 --scan --pattern 'faults:*' | head -3

echo "== SIGKILL the Redis master"
KILLED_AT=$(date +%s.%N)
kill -KILL -- "-$(cat "$WORK/master.pid")"
# Bounded by time, not by a count of logins (each costs a password hash, more on a loaded
# machine), and long enough for a Sentinel that entered TILT mode under load (30 s).
DEADLINE=$(($(date +%s) + 75))
while ! master_is 56380; do
    s=$(login owner password123); echo "$s" >>"$STATUSES"
    [ "$s" = 200 ] || { echo "FAIL: the owner's login answered $s during the switch"; exit 1; }
    [ "$(date +%s)" -lt "$DEADLINE" ] || { echo "FAIL: no new master within 75 s"; exit 1; }
    sleep 0.1
done
SWITCHED_AT=$(date +%s.%N)
echo "sentinels promoted 56380 $(python3 -c "print(f'{$SWITCHED_AT-$KILLED_AT:.1f}')") s after the kill"
throttled_after_guesses during1 8 || { echo "FAIL: no throttling during the switch"; exit 1; }
redis_ok() { curl -fsS "$SERVICE_URL/health" | grep -q '"redis":{"status":"ok"}'; }
wait_until 20 "/health redis ok on the new master" redis_ok
BACK_AT=$(date +%s.%N)
echo "limits shared again $(python3 -c "print(f'{$BACK_AT-$SWITCHED_AT:.1f}')") s after the promotion"
throttled_after_guesses after 8 || { echo "FAIL: no throttling after the switch"; exit 1; }
keys=$(cli 56380 --scan --pattern 'faults:*' | wc -l)
[ "$keys" -gt 0 ] || { echo "FAIL: no counters on the new master"; exit 1; }
echo "$keys counters on the new master"
if grep -q '^5' "$STATUSES"; then
    echo "FAIL: 5xx answered: $(sort "$STATUSES" | uniq -c | tr '\n' ' ')"; exit 1
fi
echo "statuses: $(sort "$STATUSES" | uniq -c | tr '\n' ' ')"
echo "PASS: Redis Sentinel failover"
