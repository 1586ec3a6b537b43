# Shared by the fault scripts: a temporary directory, processes started here and killed
# by the trap whatever happens, the service binary, a few waits. Loopback only.
set -euo pipefail

AUTH_BIN=${AUTH_BIN:?set AUTH_BIN to the auth-service binary}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d /tmp/auth-faults.XXXXXX)
chmod 755 "$WORK"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        # Each was started in its own process group (setsid): end the group.
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    # FAULTS_KEEP=1 keeps the logs and data for a look after a failure.
    if [ "${FAULTS_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

# start NAME COMMAND...: in the background, its own process group, output to $WORK/NAME.log
start() {
    local name=$1
    shift
    setsid "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    echo $! >"$WORK/$name.pid"
}

# wait_until SECONDS DESCRIPTION COMMAND...
wait_until() {
    local seconds=$1 what=$2 i
    shift 2
    for ((i = 0; i < seconds * 4; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    echo "FAIL: $what not within ${seconds}s" >&2
    return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# serve NAME ENV...: the service on a free port with these settings; sets $SERVICE_URL.
serve() {
    local name=$1 port
    shift
    port=$(free_port)
    mkdir -p "$WORK/$name-data"
    start "$name" env -i PATH="$PATH" HOST=127.0.0.1 PORT="$port" DATA_DIR="$WORK/$name-data" \
        SECRET_KEY=fault-test-secret-key-0123456789abcdef INTERNAL_API_KEYS=fault-key \
        PASSWORD_HASH=bcrypt BCRYPT_COST=4 RATE_LIMIT_AUTH_PER_MINUTE=100000 \
        RATE_LIMIT_DEFAULT_PER_MINUTE=1000000 REQUIRE_EMAIL_VERIFICATION=false ACCESS_LOG=false LOG_LEVEL=info "$@" "$AUTH_BIN" serve
    SERVICE_URL="http://127.0.0.1:$port"
    wait_until 60 "the service answering /health/ready" curl -fsS "$SERVICE_URL/health/ready"
}

# accounts N FILE: N users with 1,000,000 credits each, written as JSON for client.py.
accounts() {
    local n=$1 file=$2 i user id access
    echo "[" >"$file"
    for ((i = 1; i <= n; i++)); do
        user="fault$i"
        curl -fsS -X POST "$SERVICE_URL/auth/register" -H 'Content-Type: application/json' \
            -d "{\"username\":\"$user\",\"email\":\"$user@example.com\",\"password\":\"password123\"}" >/dev/null
        access=$(curl -fsS -X POST "$SERVICE_URL/auth/login" -H 'Content-Type: application/x-www-form-urlencoded' \
            -d "username=$user&password=password123" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
        id=$(curl -fsS "$SERVICE_URL/auth/me" -H "Authorization: Bearer $access" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
        curl -fsS -X POST "$SERVICE_URL/credits/add" -H 'X-API-Key: fault-key' -H 'Content-Type: application/json' \
            -d "{\"user_id\":$id,\"amount\":1000000,\"reference_id\":\"grant-$id\"}" >/dev/null
        [ "$i" -gt 1 ] && echo "," >>"$file"
        echo "{\"id\":$id,\"access\":\"$access\"}" >>"$file"
    done
    echo "]" >>"$file"
}
