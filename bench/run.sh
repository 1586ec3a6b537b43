#!/usr/bin/env bash
# Benchmarks of auth-service (DESIGN §8). Builds the release binary, then for each backend
# starts it on a fresh database, seeds users and credits, runs the scenarios with wrk and
# writes a markdown report to stdout and bench/results/<run id>.md.
#
#   bench/run.sh                      # everything, both backends, 20 s per run
#   bench/run.sh -d 10 -b sqlite      # 10 s per run, SQLite only
#   bench/run.sh --quick              # smoke test: 2 s runs, few connections
#   bench/run.sh -h                   # all options
#
# See bench/README.md for what each scenario does and how results reach BENCHMARKS.md.
set -euo pipefail
shopt -s inherit_errexit

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")

# ---- settings (environment overrides, then options) ---------------------------------
DURATION=${DURATION:-20}                 # seconds per measured run
WARMUP=${WARMUP:-3}                      # seconds of unrecorded load before each group
BACKENDS=${BACKENDS:-"postgres sqlite"}
SCENARIOS=${SCENARIOS:-"startup login me balance use-hot use-spread webhook mix scaleout"}
LOGIN_CONC=${LOGIN_CONC:-"1 2 4 16"}
READ_CONC=${READ_CONC:-"1 16 64 256"}
USE_CONC=${USE_CONC:-"1 16 64"}
MIX_LOGIN_CONC=${MIX_LOGIN_CONC:-8}      # logins in flight during the mix (> hashers)
MIX_READ_CONC=${MIX_READ_CONC:-64}       # reads in flight during the mix
MIX_READ_PATH=${MIX_READ_PATH:-/credits/balance}
WEBHOOK_CONC=${WEBHOOK_CONC:-"16 64"}     # connections posting Stripe events
WEBHOOK_MAX_RATE=${WEBHOOK_MAX_RATE:-5000} # events signed per second of run (file size)
SCALE_READ_CONC=${SCALE_READ_CONC:-64}   # scale-out: reads in flight
SCALE_USE_CONC=${SCALE_USE_CONC:-64}     # scale-out: hot-account uses in flight
NGINX_WORKERS=${NGINX_WORKERS:-auto}     # scale-out: nginx worker_processes
ACCOUNTS=${ACCOUNTS:-10000}              # seeded accounts (spread spending, logins)
TOKEN_USERS=${TOKEN_USERS:-16}           # users whose tokens the read scenarios cycle over
STARTUP_RUNS=${STARTUP_RUNS:-5}          # fresh SQLite starts timed
HASH_SAMPLES=${HASH_SAMPLES:-16}         # bcrypt verifies timed per core (argon2id: 4x)
# The password hash of the service under test: empty = the binary's own default (argon2id
# since issue 14, bcrypt before); argon2id or bcrypt = PASSWORD_HASH for the service.
PASSWORD_HASH_CHOICE=${BENCH_PASSWORD_HASH:-}
BCRYPT_COST_CHOICE=${BENCH_BCRYPT_COST:-}  # empty = the service's default (12)
# Runs also sampled by `perf record` (whole machine), as "scenario:connections ..." or
# "all"; where the CPU went goes to results/<run id>-profiles.txt (bench/README.md).
PROFILE_RUNS=${BENCH_PROFILE:-}
WRK_THREADS=${WRK_THREADS:-2}            # wrk threads (capped at the connection count)
WRK_TIMEOUT=${WRK_TIMEOUT:-10s}
PORT=${BENCH_PORT:-18080}                # the service; scale-out instances use PORT+1, PORT+2
REDIS_URL_BENCH=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}  # scale-out only
PG_SERVER=${BENCH_PG_SERVER:-postgres://postgres@127.0.0.1:5432}
# How the service reaches the database: over the local Unix socket, as a service on the
# database's own machine would (TCP to 127.0.0.1 negotiates TLS by default: ~20% slower).
PG_URL_OPTIONS=${BENCH_PG_URL_OPTIONS-?host=/var/run/postgresql}
BIN=${AUTH_SERVICE_BIN:-$ROOT/target/release/auth-service}
HASH_BIN=${HASH_COST_BIN:-$ROOT/target/release/examples/hash_cost}
BUILD=1
PUBLISH=0
KEEP=0
INSTALL=0

# Fixed by the method (README): rate limits off, quiet logs, billing on (no Stripe call).
PASSWORD='bench-password-123'
API_KEY='bench-internal-key-0123456789'
SECRET_KEY='bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz'
USER_PREFIX='bench_'
HOT_USER='hot_account'
SEED_USER='seed_user'
SPREAD_BALANCE_CENTS=100000000          # 1,000,000.00 credits per seeded account
HOT_BALANCE_CENTS=100000000000          # 1,000,000,000.00 credits: never runs out
USE_AMOUNT='0.01'                        # each use spends one cent
USE_AMOUNT_CENTS=1
# Billing for the webhook run: fake keys (the webhook path never calls Stripe; any other
# Stripe call would go to a closed local port), one one-time plan worth 100.00 credits.
STRIPE_KEY='sk_test_bench_not_a_key'
WEBHOOK_SECRET='whsec_bench_not_a_secret'
PLAN_ID='bench-pack'
PLAN_PRICE_ID='price_bench_pack'
PLAN_CREDITS_CENTS=10000

usage() {
    cat <<EOF
usage: bench/run.sh [options]
  -d, --duration SECONDS   length of each measured run (default $DURATION)
  -w, --warmup SECONDS     unrecorded load before each group of runs (default $WARMUP)
  -b, --backend NAME       postgres, sqlite or both (default both)
  -s, --scenarios LIST     comma-separated subset of: startup,login,me,balance,
                           use-hot,use-spread,webhook,mix,scaleout (default all)
      --quick              smoke test: 2 s runs, no warm-up, few connections
      --no-build           use the binaries already built
      --publish            also copy the report to BENCHMARKS.md at the repository root
      --keep               keep the scratch directory (service logs, SQLite files)
      --install            apt-get install missing tools (wrk, sqlite3, nginx, ...) first
  -h, --help
Environment overrides: LOGIN_CONC, READ_CONC, USE_CONC, MIX_LOGIN_CONC, MIX_READ_CONC,
WEBHOOK_CONC, WEBHOOK_MAX_RATE, SCALE_READ_CONC, SCALE_USE_CONC, NGINX_WORKERS, ACCOUNTS,
TOKEN_USERS, STARTUP_RUNS, HASH_SAMPLES, WRK_THREADS, BENCH_PORT, BENCH_PG_SERVER,
BENCH_PG_URL_OPTIONS, BENCH_REDIS_URL, BENCH_PASSWORD_HASH, BENCH_BCRYPT_COST,
AUTH_SERVICE_BIN, HASH_COST_BIN (see bench/README.md).
EOF
}

while (($#)); do
    case $1 in
        -d|--duration) DURATION=$2; shift ;;
        -w|--warmup) WARMUP=$2; shift ;;
        -b|--backend)
            case $2 in
                both) BACKENDS="postgres sqlite" ;;
                postgres|pg) BACKENDS=postgres ;;
                sqlite) BACKENDS=sqlite ;;
                *) echo "unknown backend: $2" >&2; exit 2 ;;
            esac
            shift ;;
        -s|--scenarios) SCENARIOS=${2//,/ }; shift ;;
        --quick)
            DURATION=2 WARMUP=0 LOGIN_CONC="1 2" READ_CONC="1 16" USE_CONC="1 16"
            MIX_LOGIN_CONC=4 MIX_READ_CONC=8 STARTUP_RUNS=2 HASH_SAMPLES=2 TOKEN_USERS=2
            WEBHOOK_CONC=16 SCALE_READ_CONC=16 SCALE_USE_CONC=16 ;;
        --no-build) BUILD=0 ;;
        --publish) PUBLISH=1 ;;
        --keep) KEEP=1 ;;
        --install) INSTALL=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

case $PASSWORD_HASH_CHOICE in
    ''|argon2id|bcrypt) ;;
    *) echo "BENCH_PASSWORD_HASH must be argon2id, bcrypt or empty (the service's default)" >&2; exit 2 ;;
esac

want() { [[ " $SCENARIOS " == *" $1 "* ]]; }
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- tools ------------------------------------------------------------------------------
# The scale-out run needs nginx, which Debian installs in /usr/sbin (often not on PATH).
find_nginx() {
    local d
    if [[ -n ${NGINX_BIN:-} ]]; then echo "$NGINX_BIN"; return; fi
    command -v nginx 2>/dev/null && return
    for d in /usr/sbin /usr/local/sbin /sbin /usr/local/nginx/sbin; do
        [[ -x $d/nginx ]] && { echo "$d/nginx"; return; }
    done
    return 1
}
scaleout_wanted() { want scaleout && [[ " $BACKENDS " == *" postgres "* ]]; }
check_tools() {
    local missing=() tool
    local -A package=([wrk]=wrk [curl]=curl [python3]=python3 [psql]=postgresql-client
                      [sqlite3]=sqlite3 [perf]=linux-perf)
    local needed=(wrk curl python3)
    [[ -n $PROFILE_RUNS ]] && needed+=(perf)
    [[ " $BACKENDS " == *" postgres "* ]] && needed+=(psql)
    [[ " $BACKENDS " == *" sqlite "* ]] && needed+=(sqlite3)
    for tool in "${needed[@]}"; do
        command -v "$tool" >/dev/null || missing+=("${package[$tool]}")
    done
    if scaleout_wanted && ! find_nginx >/dev/null; then missing+=(nginx); fi
    ((${#missing[@]} == 0)) && return 0
    if ((INSTALL)); then
        log "installing: ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
        # Debian starts the packaged nginx as a system service on port 80; the benchmark
        # runs its own instance from a generated config and does not use that one.
    else
        echo "missing tools. On Debian/Ubuntu install them with:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        echo "(or rerun with --install). wrk can also be built from https://github.com/wg/wrk." >&2
        exit 1
    fi
}
check_tools
NGINX=
if scaleout_wanted; then
    NGINX=$(find_nginx) || die "nginx not found (set NGINX_BIN)"
    # Redis: the host and port of BENCH_REDIS_URL must answer a PING.
    redis_hostport=${REDIS_URL_BENCH#*://}
    redis_hostport=${redis_hostport##*@}
    redis_hostport=${redis_hostport%%/*}
    # shellcheck disable=SC2016
    timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "PING\r\n" >&3 && read -r -t 3 a <&3 &&
                       [[ $a == *PONG* || $a == *NOAUTH* ]]' _ "${redis_hostport%:*}" "${redis_hostport##*:}" 2>/dev/null \
        || die "scale-out needs Redis at $REDIS_URL_BENCH (sudo apt-get install redis-server, set BENCH_REDIS_URL, or leave scaleout out of -s)"
fi

CORES=$(nproc)
CLK_TCK=$(getconf CLK_TCK)
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$BENCH_DIR/results/$RUN_ID
RAW=$OUT/raw.txt
mkdir -p "$OUT/logs"
WORK=$(mktemp -d /tmp/auth-bench.XXXXXX)
URL="http://127.0.0.1:$PORT"
TARGET_URL=$URL     # where wrk sends its load (the scale-out run points it at nginx)
SVC_PID=
EXTRA_PIDS=()       # scale-out instances and nginx, stopped by the cleanup too
PG_DB=

cleanup() {
    local rc=$? pid
    stop_service || true
    for pid in "${EXTRA_PIDS[@]}"; do stop_pid "$pid" || true; done
    if [[ -n $PG_DB ]]; then
        psql -X -q "$PG_SERVER/postgres" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if ((KEEP)); then log "scratch files kept in $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build ------------------------------------------------------------------------------
if ((BUILD)); then
    log "building release binary and hash_cost example"
    (cd "$ROOT" && cargo build --release --bin auth-service && cargo build --release --example hash_cost) >&2
fi
[[ -x $BIN ]] || die "no service binary at $BIN (build it, or set AUTH_SERVICE_BIN)"
[[ -x $HASH_BIN ]] || die "no hash_cost binary at $HASH_BIN (cargo build --release --example hash_cost)"

# ---- machine description ----------------------------------------------------------------
meta() { printf '%s\t%s\n' "$1" "$2" >>"$OUT/meta.tsv"; }
{
    meta run_id "$RUN_ID"
    meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
    meta cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    meta cores "$CORES"
    meta memory "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    meta os "$(. /etc/os-release && echo "$PRETTY_NAME")"
    meta kernel "$(uname -r)"
    meta loadavg_at_start "$(cut -d' ' -f1-3 /proc/loadavg)"
    meta wrk "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
    meta rustc "$(rustc --version 2>/dev/null || echo unknown)"
    meta commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (uncommitted changes)')"
    meta binary "$(basename "$BIN") $("$BIN" --version 2>/dev/null | head -1 | awk '{print $NF}'), sha256 $(sha256sum "$BIN" | cut -c1-12)"
    meta label "${BENCH_LABEL:-}"
    meta webhook_max_rate "$WEBHOOK_MAX_RATE"
    meta duration_s "$DURATION"
    meta warmup_s "$WARMUP"
    meta wrk_threads "$WRK_THREADS"
    meta accounts "$ACCOUNTS"
    meta token_users "$TOKEN_USERS"
    meta mix "logins c=$MIX_LOGIN_CONC + GET $MIX_READ_PATH c=$MIX_READ_CONC"
    if [[ " $BACKENDS " == *" postgres "* ]]; then
        meta postgresql "$(psql -X -A -t "$PG_SERVER/postgres" -c "SELECT version_string || '; ' || string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings, (SELECT current_setting('server_version') AS version_string) AS v WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync', 'max_connections') GROUP BY version_string" 2>/dev/null || echo unreachable)"
    fi
    meta backends "$BACKENDS"
}

# ---- /proc sampling -----------------------------------------------------------------------
proc_ticks() { # utime+stime of a pid, in clock ticks
    local stat rest
    read -r stat <"/proc/$1/stat" || { echo 0; return; }
    rest=${stat##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo $((${12} + ${13}))
}
pg_snapshot() { # "pid ticks" of the PostgreSQL server's own processes and of the backends
    # serving the benchmark database; other databases' backends (someone's tests) are left out
    local d comm stat rest title
    for d in /proc/[0-9]*; do
        read -r comm 2>/dev/null <"$d/comm" || continue
        [[ $comm == postgres ]] || continue
        IFS= read -r -d '' title 2>/dev/null <"$d/cmdline" || true
        if [[ $title == *"("[0-9]*")"* || $title == *"[local]"* ]]; then
            [[ -n $PG_DB && $title == *" $PG_DB "* ]] || continue
        fi
        read -r stat 2>/dev/null <"$d/stat" || continue
        rest=${stat##*) }
        # shellcheck disable=SC2086
        set -- $rest
        echo "${d#/proc/} $((${12} + ${13}))"
    done
}
pg_delta() { # ticks used between two snapshots; processes born in between count from zero
    awk 'NR == FNR { before[$1] = $2; next } { d += $2 - (($1 in before) ? before[$1] : 0) } END { print d + 0 }' "$1" "$2"
}
machine_ticks() { # "busy total" over all cores
    local user nice system idle iowait irq softirq steal _
    read -r _ user nice system idle iowait irq softirq steal _ </proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}
rss_kb() {
    local k v _
    [[ -r /proc/$1/status ]] || { echo 0; return; }
    while read -r k v _; do [[ $k == VmRSS: ]] && { echo "$v"; return; }; done <"/proc/$1/status" 2>/dev/null
    echo 0
}
rss_sampler() { # writes the highest summed VmRSS of the service seen to $1 until $1.stop exists
    local file=$1 max=0 v
    while [[ ! -e $file.stop ]]; do
        v=$(svc_rss_kb)
        ((v > max)) && max=$v && echo "$max" >"$file"
        sleep 0.25
    done
}

# The processes measured as "the service" (their CPU and RSS are summed) and as the load
# balancer (nginx: its master and workers); the scale-out run changes both.
MEASURE_PIDS=()
LB_PID=
svc_pids() { if ((${#MEASURE_PIDS[@]})); then echo "${MEASURE_PIDS[@]}"; else echo "$SVC_PID"; fi; }
svc_ticks() { local p t=0; for p in $(svc_pids); do t=$((t + $(proc_ticks "$p"))); done; echo "$t"; }
svc_rss_kb() { local p t=0; for p in $(svc_pids); do t=$((t + $(rss_kb "$p"))); done; echo "$t"; }
lb_snapshot() { # "pid ticks" of nginx's master and its workers
    [[ -n $LB_PID ]] || return 0
    local d stat rest
    for d in /proc/[0-9]*; do
        read -r stat 2>/dev/null <"$d/stat" || continue
        rest=${stat##*) }
        # shellcheck disable=SC2086
        set -- $rest
        [[ ${d#/proc/} == "$LB_PID" || $2 == "$LB_PID" ]] || continue
        echo "${d#/proc/} $((${12} + ${13}))"
    done
}

MEASURE_T0='' MEASURE_SVC0='' MEASURE_M0='' MEASURE_RSSFILE='' MEASURE_SAMPLER=''
measure_begin() {
    MEASURE_RSSFILE=$WORK/rss.$RANDOM
    svc_rss_kb >"$MEASURE_RSSFILE"
    rss_sampler "$MEASURE_RSSFILE" &
    MEASURE_SAMPLER=$!
    MEASURE_SVC0=$(svc_ticks)
    pg_snapshot >"$WORK/pg0"
    lb_snapshot >"$WORK/lb0"
    MEASURE_M0=$(machine_ticks)
    MEASURE_T0=$(date +%s%N)
}
measure_end() { # prints key=value fields for the window
    local t1 svc1 pg1 lb1 m1 wall busy0 total0 busy1 total1
    t1=$(date +%s%N)
    svc1=$(svc_ticks)
    pg_snapshot >"$WORK/pg1"
    pg1=$(pg_delta "$WORK/pg0" "$WORK/pg1")
    lb_snapshot >"$WORK/lb1"
    lb1=$(pg_delta "$WORK/lb0" "$WORK/lb1")
    m1=$(machine_ticks)
    touch "$MEASURE_RSSFILE.stop"
    wait "$MEASURE_SAMPLER" 2>/dev/null || true
    read -r busy0 total0 <<<"$MEASURE_M0"
    read -r busy1 total1 <<<"$m1"
    wall=$(((t1 - MEASURE_T0) / 1000000))
    awk -v wall="$wall" -v hz="$CLK_TCK" -v s="$((svc1 - MEASURE_SVC0))" -v lb="$lb1" \
        -v pg="$pg1" -v busy="$((busy1 - busy0))" -v total="$((total1 - total0))" -v has_lb="${LB_PID:+1}" \
        -v cores="$CORES" -v rss="$(cat "$MEASURE_RSSFILE")" -v rss_end="$(svc_rss_kb)" 'BEGIN {
            w = wall / 1000.0
            printf "window_s=%.3f svc_cpu_pct=%.1f pg_cpu_pct=%.1f machine_cpu_pct=%.1f rss_peak_kb=%d rss_end_kb=%d",
                w, 100 * s / hz / w, 100 * pg / hz / w, (total > 0 ? 100 * cores * busy / total : 0), rss, rss_end
            if (has_lb) printf " lb_cpu_pct=%.1f", 100 * lb / hz / w
        }'
}

# ---- service ------------------------------------------------------------------------------
SVC_ENV=()
START_MS=
# service_env DATABASE_URL DATA_DIR PORT [NAME=VALUE...]: the service's whole environment.
service_env() {
    local db_url=$1 data_dir=$2 port=$3; shift 3
    SVC_ENV=(PATH="$PATH" HOME="${HOME:-/root}" DATABASE_URL="$db_url" DATA_DIR="$data_dir"
             HOST=127.0.0.1 PORT="$port" SECRET_KEY="$SECRET_KEY" INTERNAL_API_KEYS="$API_KEY"
             LOG_LEVEL=warn RATE_LIMIT_AUTH_PER_MINUTE=0 RATE_LIMIT_DEFAULT_PER_MINUTE=0
             STRIPE_SECRET_KEY="$STRIPE_KEY" STRIPE_WEBHOOK_SECRET="$WEBHOOK_SECRET"
             STRIPE_API_BASE=http://127.0.0.1:9)
    if [[ -n $PASSWORD_HASH_CHOICE ]]; then SVC_ENV+=(PASSWORD_HASH="$PASSWORD_HASH_CHOICE"); fi
    if [[ -n $BCRYPT_COST_CHOICE ]]; then SVC_ENV+=(BCRYPT_COST="$BCRYPT_COST_CHOICE"); fi
    SVC_ENV+=("$@")
}
# launch PORT LOG: starts the binary with SVC_ENV and waits for GET /health; sets
# LAUNCHED_PID and START_MS.
LAUNCHED_PID=
launch() {
    local port=$1 logfile=$2 t0 t1 url="http://127.0.0.1:$1"
    if curl -s -o /dev/null --max-time 1 "$url/health"; then
        die "something already answers on $url; set BENCH_PORT to a free port"
    fi
    t0=$(date +%s%N)
    # cwd is the scratch dir so no .env of the repository is read; env -i so nothing of
    # the caller's environment (REDIS_URL, ...) leaks in.
    (cd "$WORK" && exec env -i "${SVC_ENV[@]}" "$BIN") >>"$logfile" 2>&1 &
    LAUNCHED_PID=$!
    until curl -s -o /dev/null -f --max-time 2 "$url/health"; do
        if ! kill -0 "$LAUNCHED_PID" 2>/dev/null; then
            tail -20 "$logfile" >&2
            LAUNCHED_PID=
            die "the service exited during start (log above)"
        fi
        if (($(date +%s%N) - t0 > 60000000000)); then die "not ready after 60 s"; fi
        sleep 0.005
    done
    t1=$(date +%s%N)
    START_MS=$(((t1 - t0) / 1000000))
}
start_service() { # start_service DATABASE_URL DATA_DIR LOG; sets SVC_PID and START_MS
    mkdir -p "$2"
    service_env "$1" "$2" "$PORT"
    launch "$PORT" "$3"
    SVC_PID=$LAUNCHED_PID
}
stop_pid() { # SIGTERM, up to 10 s to finish, then SIGKILL
    local pid=$1
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
stop_service() {
    [[ -n $SVC_PID ]] || return 0
    stop_pid "$SVC_PID"
    SVC_PID=
}

# HTTP helpers. http METHOD PATH [curl args...] -> body on stdout, fails unless 2xx
http() {
    local method=$1 path=$2; shift 2
    curl -s -f --max-time 30 -X "$method" "$URL$path" "$@"
}
json_field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
login_token() { # login_token USERNAME -> access token and a newline
    local token
    token=$(http POST /auth/login --data-urlencode "username=$1" --data-urlencode "password=$PASSWORD" | json_field access_token)
    [[ -n $token ]] && printf '%s\n' "$token"
}

# A few requests of every kind, then the resident set once the service is quiet.
idle_rss_after_requests() {
    local token
    http GET /health >/dev/null
    http POST /auth/register -H 'Content-Type: application/json' \
        -d "{\"username\":\"$SEED_USER\",\"email\":\"$SEED_USER@example.com\",\"password\":\"$PASSWORD\"}" >/dev/null \
        || die "registering $SEED_USER failed"
    token=$(login_token "$SEED_USER")
    [[ -n $token ]] || die "login of $SEED_USER failed"
    http GET /auth/me -H "Authorization: Bearer $token" >/dev/null || die "GET /auth/me failed"
    http GET /credits/balance -H "Authorization: Bearer $token" >/dev/null || die "GET /credits/balance failed"
    http GET /health >/dev/null
    sleep 2
    rss_kb "$SVC_PID"
}

# ---- database -----------------------------------------------------------------------------
BACKEND='' DB_URL='' SQLITE_FILE=''
HASH_SCHEME='' HASH_DESC='' HASH_BCRYPT_COST=''  # the password hash the service stores (seed)
sql() { # sql "STATEMENTS" -> rows, columns separated by |
    case $BACKEND in
        postgres) psql -X -q -A -t -v ON_ERROR_STOP=1 "$DB_URL" -c "$1" ;;
        sqlite) sqlite3 -batch -noheader -bail -cmd '.timeout 30000' "$SQLITE_FILE" "$1" ;;
    esac
}
sql_now() { # the current time as each backend stores timestamps
    if [[ $BACKEND == postgres ]]; then echo "now()"; else echo "strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')"; fi
}

seed() {
    local hash series name now
    now=$(sql_now)
    hash=$(sql "SELECT password_hash FROM users WHERE username_key = '$SEED_USER'")
    # The kind of hash the service made is the one every login of the run verifies.
    # shellcheck disable=SC2016 # the dollar signs are the hash formats' own
    case $hash in
        '$argon2id$'*)
            HASH_SCHEME=argon2id
            HASH_DESC="argon2id ($(sed -n 's/^\$argon2id\$v=[0-9]*\$\([^$]*\)\$.*/\1/p' <<<"$hash"))" ;;
        '$2'[aby]'$'[0-9][0-9]'$'*)
            HASH_SCHEME=bcrypt
            HASH_BCRYPT_COST=$((10#${hash:4:2}))
            HASH_DESC="bcrypt (cost $HASH_BCRYPT_COST)" ;;
        *) die "could not read the password hash of $SEED_USER (got '${hash:0:12}...')" ;;
    esac
    if [[ -n $PASSWORD_HASH_CHOICE && $HASH_SCHEME != "$PASSWORD_HASH_CHOICE" ]]; then
        die "BENCH_PASSWORD_HASH=$PASSWORD_HASH_CHOICE but the service stored a $HASH_SCHEME hash"
    fi
    # Safe to paste into SQL: no quote can occur in either format.
    [[ $hash =~ ^[\$./+=,A-Za-z0-9]+$ ]] || die "unexpected characters in the hash"
    local how="the service's default"
    [[ -z $PASSWORD_HASH_CHOICE ]] || how="BENCH_PASSWORD_HASH=$PASSWORD_HASH_CHOICE"
    meta password_hash "$HASH_DESC, $how"
    if [[ $BACKEND == postgres ]]; then
        series="SELECT g AS n FROM generate_series(1, $ACCOUNTS) AS g"
        name="'$USER_PREFIX' || lpad(n::text, 5, '0')"
    else
        series="WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $ACCOUNTS) SELECT n FROM g"
        name="printf('${USER_PREFIX}%05d', n)"
    fi
    # Every seeded user shares the one hash computed by the service for $SEED_USER (same
    # password; argon2id or bcrypt, whichever the service is configured with). Each balance gets its opening ledger row, so the
    # ledger sums to the balance like everywhere else.
    sql "BEGIN;
        INSERT INTO users (username, username_key, email, password_hash, is_admin, is_active,
                           is_verified, created_at, updated_at)
        SELECT $name, $name, $name || '@example.com', '$hash', FALSE, TRUE, TRUE, $now, $now
        FROM ($series) AS s;
        INSERT INTO users (username, username_key, email, password_hash, is_admin, is_active,
                           is_verified, created_at, updated_at)
        VALUES ('$HOT_USER', '$HOT_USER', '$HOT_USER@example.com', '$hash', FALSE, TRUE, TRUE, $now, $now);
        INSERT INTO credit_balances (user_id, balance, updated_at)
        SELECT id, CASE WHEN username_key = '$HOT_USER' THEN $HOT_BALANCE_CENTS ELSE $SPREAD_BALANCE_CENTS END, $now
        FROM users WHERE username_key LIKE '$USER_PREFIX%' OR username_key = '$HOT_USER';
        INSERT INTO credit_transactions (user_id, amount, transaction_type, reference_id, description,
                                         balance_after, created_at)
        SELECT user_id, balance, 'credit_added', 'bench-seed', 'bench seed', balance, $now
        FROM credit_balances WHERE balance > 0;
        COMMIT;" >/dev/null
    if [[ $BACKEND == postgres ]]; then sql "ANALYZE" >/dev/null; fi
    sql "SELECT id FROM users WHERE username_key LIKE '$USER_PREFIX%' ORDER BY id" >"$WORK/ids.txt"
    HOT_ID=$(sql "SELECT id FROM users WHERE username_key = '$HOT_USER'")
    [[ $(wc -l <"$WORK/ids.txt") -eq $ACCOUNTS && -n $HOT_ID ]] || die "seeding did not produce $ACCOUNTS accounts"
}

# ---- load ---------------------------------------------------------------------------------
# wrk_job NAME CONC DURATION SCRIPT [wrk options...] -- [script args...]
# Runs wrk, keeping its output in $OUT/logs and its CPU time in NAME.time.
wrk_job() {
    local name=$1 conc=$2 dur=$3 script=$4 threads opts=() ; shift 4
    while (($#)) && [[ $1 != -- ]]; do opts+=("$1"); shift; done
    (($#)) && shift
    threads=$((conc < WRK_THREADS ? conc : WRK_THREADS))
    local TIMEFORMAT='%3U %3S'
    { time wrk -t "$threads" -c "$conc" -d "${dur}s" --timeout "$WRK_TIMEOUT" \
        -s "$BENCH_DIR/lua/$script" "${opts[@]}" "$TARGET_URL" -- "$@" \
        >"$OUT/logs/$name.txt" 2>&1 ; } 2>"$WORK/$name.time"
}
# Fields of one finished wrk job: its WRK_RESULT line plus its own CPU use.
wrk_fields() { # wrk_fields NAME WINDOW_S
    local name=$1 user sys line
    line=$(grep -m1 '^WRK_RESULT ' "$OUT/logs/$name.txt") || die "wrk $name produced no result: $(tail -3 "$OUT/logs/$name.txt")"
    read -r user sys <"$WORK/$name.time"
    printf '%s wrk_cpu_pct=%s' "${line#WRK_RESULT }" "$(awk -v u="$user" -v s="$sys" -v w="$2" 'BEGIN {printf "%.1f", 100 * (u + s) / w}')"
}
field() { # field NAME "k=v k=v ..." -> v
    local kv
    for kv in $2; do [[ ${kv%%=*} == "$1" ]] && { echo "${kv#*=}"; return; }; done
    return 0 # absent: empty
}
record() { echo "$*" >>"$RAW"; }

# measured_run SCENARIO CONC SCRIPT [wrk options] -- [script args]: one measured run; its
# fields are left in LAST_RUN (and the wrk part in LAST_WRK).
# VARIANT (when set) tells runs of one scenario apart (the scale-out topologies) and
# RUN_SECONDS (when set) replaces DURATION for one run.
VARIANT=
RUN_SECONDS=
measured_run() {
    local scenario=$1 conc=$2 script=$3 name m w dur=${RUN_SECONDS:-$DURATION}; shift 3
    name="$BACKEND-$scenario${VARIANT:+-$VARIANT}-c$conc"
    log "$BACKEND $scenario${VARIANT:+ ($VARIANT)} c=$conc (${dur}s)"
    if profile_wanted "$scenario" "$conc"; then profile_begin "$name" "$dur"; fi
    measure_begin
    wrk_job "$name" "$conc" "$dur" "$script" "$@"
    m=$(measure_end)
    profile_end
    w=$(wrk_fields "$name" "$(field window_s "$m")")
    LAST_WRK=$w
    LAST_RUN="RUN backend=$BACKEND scenario=$scenario${VARIANT:+ variant=$VARIANT} conc=$conc $w $m"
}
load() { measured_run "$@"; record "$LAST_RUN"; sleep 1; }

# ---- profiles (BENCH_PROFILE) -------------------------------------------------------------
# perf samples every core at 499 Hz (cpu-clock, no call graphs: cheap enough not to move
# the numbers much, and it works where a VM offers no hardware counters). The text report
# keeps the split by process (comm) and binary, then the hottest functions of every process.
PROFILE_PID=
PROFILE_NAME=
profile_wanted() { [[ $PROFILE_RUNS == all || " $PROFILE_RUNS " == *" $1:$2 "* ]]; }
profile_begin() { # profile_begin RUN_NAME SECONDS
    mkdir -p "$OUT/profiles"
    PROFILE_NAME=$1
    perf record -F 499 -a -e cpu-clock -o "$WORK/$1.perf" -- sleep "$2" >/dev/null 2>&1 &
    PROFILE_PID=$!
}
profile_end() {
    [[ -n $PROFILE_PID ]] || return 0
    wait "$PROFILE_PID" || log "perf record failed for $PROFILE_NAME"
    local data="$WORK/$PROFILE_NAME.perf" txt="$OUT/profiles/$PROFILE_NAME.txt"
    PROFILE_PID=
    [[ -s $data ]] || return 0
    {
        echo "# $PROFILE_NAME: share of all samples ($CORES cores = 100 %) by process and binary"
        perf report -i "$data" --stdio --no-children --sort comm,dso --percent-limit 0.5 2>/dev/null | grep -v '^$'
        echo
        echo "# the hottest functions, whole machine"
        perf report -i "$data" --stdio --no-children --sort comm,dso,sym --percent-limit 0.4 2>/dev/null | grep -v '^$'
    } >"$txt"
    rm -f "$data"
}
warmup() { # warmup CONC SCRIPT [wrk options] -- [script args]
    ((WARMUP > 0)) || return 0
    local conc=$1 script=$2; shift 2
    wrk_job "$BACKEND-warmup" "$conc" "$WARMUP" "$script" "$@" || true
    sleep 1
    # The tables the warm-up filled (billing_events, billing_customers, ... start empty)
    # get the statistics autovacuum would give a table in use (it analyzes after 10 %
    # changes, but only once a minute). Without them PostgreSQL keeps the plans it made
    # for an empty table — sequential scans — for the whole run (seen in the webhook
    # profile: two scans of every stored event per event).
    if [[ $BACKEND == postgres ]]; then sql "ANALYZE" >/dev/null; fi
}
LAST_WRK=
LAST_RUN=

# Ledger state of the hot account, or of every seeded account: "balance count_used sum_used"
ledger_state() { # ledger_state WHERE-clause-on-user_id
    local bal used
    bal=$(sql "SELECT COALESCE(SUM(balance), 0) FROM credit_balances WHERE $1")
    used=$(sql "SELECT COUNT(*) || ' ' || COALESCE(SUM(amount), 0) FROM credit_transactions
                WHERE transaction_type = 'credit_used' AND $1")
    echo "$bal $used"
}
# Rows whose balance_after is not the previous row's plus or minus its amount (lost update),
# and accounts whose ledger does not sum to their balance (a spend in one but not the other).
ledger_breaks() { # ledger_breaks WHERE-clause-on-user_id -> "chain_breaks sum_mismatches"
    local chain sums
    chain=$(sql "SELECT COUNT(*) FROM (
            SELECT balance_after,
                   LAG(balance_after) OVER (PARTITION BY user_id ORDER BY id) AS prev,
                   CASE WHEN transaction_type = 'credit_used' THEN -amount ELSE amount END AS delta
            FROM credit_transactions WHERE $1) AS t
        WHERE prev IS NOT NULL AND balance_after <> prev + delta")
    sums=$(sql "SELECT COUNT(*) FROM (
            SELECT b.user_id AS user_id, b.balance AS balance, COALESCE(l.total, 0) AS total
            FROM credit_balances AS b LEFT JOIN (
                SELECT user_id, SUM(CASE WHEN transaction_type = 'credit_used' THEN -amount ELSE amount END) AS total
                FROM credit_transactions GROUP BY user_id) AS l ON l.user_id = b.user_id) AS x
        WHERE ($1) AND total <> balance")
    echo "$chain $sums"
}

# use_run SCENARIO CONC WHERE -- wrk args: one spending run, reconciled with the ledger.
use_run() {
    local scenario=$1 conc=$2 where=$3 b0 n0 s0 b1 n1 s1 chain sums applied ok2xx st400 errs ok=1 why=; shift 3
    read -r b0 n0 s0 <<<"$(ledger_state "$where")"
    measured_run "$scenario" "$conc" use.lua "$@"
    read -r b1 n1 s1 <<<"$(ledger_state "$where")"
    read -r chain sums <<<"$(ledger_breaks "$where")"
    applied=$((n1 - n0))
    local statuses requests err_status e
    statuses=$(field statuses "$LAST_WRK")
    requests=$(field requests "$LAST_WRK")
    err_status=$(field err_status "$LAST_WRK")
    ok2xx=$((requests - err_status))
    st400=$(tr ',' '\n' <<<"$statuses" | sed -n 's/^400://p')
    st400=${st400:-0}
    errs=0
    for e in err_connect err_read err_write err_timeout; do errs=$((errs + $(field "$e" "$LAST_WRK"))); done
    # The server may apply the requests still in flight when wrk stops (at most one per
    # connection, plus any whose connection failed): applied - answered is in [0, slack].
    local slack=$((conc + errs))
    ((b0 - b1 == s1 - s0)) || { ok=0; why+="balance_moved_$((b0 - b1))_but_ledger_$((s1 - s0));"; }
    ((s1 - s0 == applied * USE_AMOUNT_CENTS)) || { ok=0; why+="ledger_sum_vs_count;"; }
    ((applied >= ok2xx && applied - ok2xx <= slack)) || { ok=0; why+="applied_${applied}_vs_answered_${ok2xx};"; }
    ((chain == 0)) || { ok=0; why+="${chain}_chain_breaks;"; }
    ((sums == 0)) || { ok=0; why+="${sums}_accounts_ledger_ne_balance;"; }
    ((st400 == 0)) || { ok=0; why+="${st400}_insufficient;"; }
    ((ok2xx > 0)) || { ok=0; why+="no_request_succeeded;"; }
    record "$LAST_RUN check_ok=$ok applied=$applied answered_ok=$ok2xx in_flight=$((applied - ok2xx)) chain_breaks=$chain sum_mismatches=$sums spent_cents=$((b0 - b1)) check_why=${why:--}"
    ((ok)) || log "CONSISTENCY CHECK FAILED for $scenario c=$conc: $why"
    sleep 1
}

# The hashing bound: hash_cost times argon2id (DESIGN §4 parameters) and bcrypt at the
# stored hash's cost (or BENCH_BCRYPT_COST, default 12); one HASH record per scheme, used=1
# on the one the logins verify. A hash_cost from before issue 14 times bcrypt only and
# prints no scheme: its line is bcrypt's.
hash_bound() {
    local cost=${HASH_BCRYPT_COST:-${BCRYPT_COST_CHOICE:-12}} line fields scheme n=0
    log "$BACKEND: timing password verifies for the hashing bound (logins use $HASH_DESC)"
    "$HASH_BIN" "$HASH_SAMPLES" "$cost" "$HASH_SCHEME" >"$OUT/logs/$BACKEND-hash_cost.txt" 2>&1 \
        || die "hash_cost failed: $(tail -3 "$OUT/logs/$BACKEND-hash_cost.txt")"
    while read -r line; do
        fields=${line#HASH_COST }
        scheme=$(field scheme "$fields")
        if [[ -z $scheme ]]; then
            scheme=bcrypt
            fields="scheme=bcrypt used=$([[ $HASH_SCHEME == bcrypt ]] && echo 1 || echo 0) $fields"
        fi
        record "HASH backend=$BACKEND $fields"
        n=$((n + 1))
    done < <(grep '^HASH_COST ' "$OUT/logs/$BACKEND-hash_cost.txt")
    ((n > 0)) || die "hash_cost printed no HASH_COST line"
    grep -q "^HASH backend=$BACKEND scheme=$HASH_SCHEME .*used=1" "$RAW" \
        || log "WARNING: $HASH_BIN does not time $HASH_SCHEME: the login bound is not measured"
}

# shellcheck source=bench/lib/webhook.sh
. "$BENCH_DIR/lib/webhook.sh"
# shellcheck source=bench/lib/scaleout.sh
. "$BENCH_DIR/lib/scaleout.sh"

# ---- one backend --------------------------------------------------------------------------
run_backend() {
    BACKEND=$1
    local data="$WORK/$BACKEND" c startup_ms idle_rss
    mkdir -p "$data"
    if [[ $BACKEND == postgres ]]; then
        PG_DB="auth_bench_$$_$RANDOM"
        psql -X -q -v ON_ERROR_STOP=1 "$PG_SERVER/postgres" -c "CREATE DATABASE $PG_DB" >/dev/null \
            || die "cannot create a database on $PG_SERVER (set BENCH_PG_SERVER)"
        DB_URL="$PG_SERVER/$PG_DB$PG_URL_OPTIONS"
        SVC_DB_URL=$DB_URL
    else
        SQLITE_FILE="$data/auth.db"
        SVC_DB_URL="sqlite://$SQLITE_FILE"
    fi
    log "$BACKEND: starting the service on a fresh database"
    start_service "$SVC_DB_URL" "$data/data" "$OUT/logs/$BACKEND-service.log"
    startup_ms=$START_MS
    idle_rss=$(idle_rss_after_requests)
    record "STARTUP backend=$BACKEND run=bench ready_ms=$startup_ms idle_rss_kb=$idle_rss"
    log "$BACKEND: ready in ${startup_ms} ms, idle RSS $((idle_rss / 1024)) MB; seeding $ACCOUNTS accounts"
    seed

    if want login || want mix; then
        hash_bound
    fi
    local login_args=(-- "$USER_PREFIX" "$ACCOUNTS" "$PASSWORD")
    if want login; then
        for c in $LOGIN_CONC; do load login "$c" login.lua "${login_args[@]}"; done
    fi

    if want me || want balance || want mix || want scaleout; then
        log "$BACKEND: logging in $TOKEN_USERS users for the read scenarios"
        : >"$WORK/tokens.txt"
        local i
        for ((i = 1; i <= TOKEN_USERS; i++)); do printf '%s%05d\n' "$USER_PREFIX" "$i"; done |
            { export -f login_token http json_field; export URL PASSWORD
              xargs -P "$CORES" -I{} bash -c 'login_token {} || echo "login of {} failed" >&2'; } >"$WORK/tokens.txt"
        [[ $(grep -c . "$WORK/tokens.txt") -eq $TOKEN_USERS ]] || die "could not log in the token users"
    fi
    local path
    for path in me balance; do
        want "$path" || continue
        local p=/auth/me
        [[ $path == balance ]] && p=/credits/balance
        warmup 16 read.lua -- "$p" "$WORK/tokens.txt"
        for c in $READ_CONC; do load "$path" "$c" read.lua -- "$p" "$WORK/tokens.txt"; done
    done

    local key=(-H "X-API-Key: $API_KEY")
    if want use-hot; then
        warmup 16 use.lua "${key[@]}" -- hot "$HOT_ID" "$USE_AMOUNT"
        for c in $USE_CONC; do
            use_run use-hot "$c" "user_id = $HOT_ID" "${key[@]}" -- hot "$HOT_ID" "$USE_AMOUNT"
        done
    fi
    if want use-spread; then
        warmup 16 use.lua "${key[@]}" -- spread "$WORK/ids.txt" "$USE_AMOUNT"
        for c in $USE_CONC; do
            use_run use-spread "$c" "user_id <> $HOT_ID" "${key[@]}" -- spread "$WORK/ids.txt" "$USE_AMOUNT"
        done
    fi

    if want webhook; then webhook_runs; fi

    if want mix; then
        # Logins start first and end last, so the hashers are busy for the whole read run.
        log "$BACKEND mix: logins c=$MIX_LOGIN_CONC + GET $MIX_READ_PATH c=$MIX_READ_CONC (${DURATION}s)"
        local m lname="$BACKEND-mix-login" rname="$BACKEND-mix-read" lpid
        measure_begin
        wrk_job "$lname" "$MIX_LOGIN_CONC" $((DURATION + 2)) login.lua "${login_args[@]}" &
        lpid=$!
        sleep 1
        wrk_job "$rname" "$MIX_READ_CONC" "$DURATION" read.lua -- "$MIX_READ_PATH" "$WORK/tokens.txt"
        wait "$lpid"
        m=$(measure_end)
        record "RUN backend=$BACKEND scenario=mix-login conc=$MIX_LOGIN_CONC $(wrk_fields "$lname" "$(field window_s "$m")") $m"
        record "RUN backend=$BACKEND scenario=mix-read conc=$MIX_READ_CONC $(wrk_fields "$rname" "$DURATION") $m path=$MIX_READ_PATH"
    fi

    record "PEAK backend=$BACKEND vmhwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$SVC_PID/status")"
    if want scaleout; then
        if [[ $BACKEND == postgres ]]; then
            stop_service # its port is nginx's now
            scaleout_runs "$SVC_DB_URL" "$data/scaleout"
        else
            log "scale-out runs on PostgreSQL only: skipped on $BACKEND"
        fi
    fi

    if want use-hot || want use-spread || want webhook || want scaleout; then
        local verdict=fail
        if (cd "$WORK" && env -i "${SVC_ENV[@]}" "$BIN" ledger verify) >"$OUT/logs/$BACKEND-ledger-verify.txt" 2>&1; then
            verdict=ok
        elif grep -qi 'unrecognized subcommand' "$OUT/logs/$BACKEND-ledger-verify.txt"; then
            verdict=n/a
        fi
        read -r c_chain c_sums <<<"$(ledger_breaks "1 = 1")"
        record "LEDGER backend=$BACKEND ledger_verify=$verdict chain_breaks=$c_chain sum_mismatches=$c_sums"
        log "$BACKEND: ledger verify: $verdict; whole-ledger chain breaks $c_chain, accounts not summing $c_sums"
    fi
    stop_service
    if [[ $BACKEND == postgres ]]; then
        psql -X -q "$PG_SERVER/postgres" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null
        PG_DB=
    fi
}

# Start-to-ready on fresh SQLite files (migrations included), and the idle RSS after a few
# requests, STARTUP_RUNS times.
startup_runs() {
    BACKEND=sqlite
    local i dir rss
    for ((i = 1; i <= STARTUP_RUNS; i++)); do
        dir="$WORK/startup-$i"
        mkdir -p "$dir"
        SQLITE_FILE="$dir/auth.db"
        start_service "sqlite://$SQLITE_FILE" "$dir/data" "$OUT/logs/sqlite-startup-$i.log"
        local ms=$START_MS
        rss=$(idle_rss_after_requests)
        record "STARTUP backend=sqlite run=$i ready_ms=$ms idle_rss_kb=$rss"
        log "sqlite start $i: ready in $ms ms, idle RSS $((rss / 1024)) MB"
        stop_service
    done
}

T_START=$(date +%s)
log "run $RUN_ID: backends [$BACKENDS], scenarios [$SCENARIOS], ${DURATION}s per run; raw results in $OUT"
for b in $BACKENDS; do run_backend "$b"; done
if want startup && [[ " $BACKENDS " == *" sqlite "* ]]; then startup_runs; fi
meta total_run_s "$(($(date +%s) - T_START))"
meta loadavg_at_end "$(cut -d' ' -f1-3 /proc/loadavg)"

python3 "$BENCH_DIR/lib/report.py" "$OUT" | tee "$BENCH_DIR/results/$RUN_ID.md"
log "report written to bench/results/$RUN_ID.md"
if [[ -d $OUT/profiles ]]; then # one file beside the report, so it can be kept with it
    for f in "$OUT"/profiles/*.txt; do cat "$f"; echo; done | cut -c1-220 | sed "s/ *$//" \
        >"$BENCH_DIR/results/$RUN_ID-profiles.txt"
    log "profiles written to bench/results/$RUN_ID-profiles.txt"
fi
if ((PUBLISH)); then
    cp "$BENCH_DIR/results/$RUN_ID.md" "$ROOT/BENCHMARKS.md"
    log "copied to BENCHMARKS.md"
fi
