# shellcheck shell=bash disable=SC2034,SC2153 # globals shared with bench/run.sh
# The `scaleout` scenario of bench/run.sh, which sources this file and provides the helpers
# (service_env, launch, stop_pid, measured_run, use_run, warmup, record, meta, log) and
# settings it uses.
#
# Two instances of the service on the one PostgreSQL database and one Redis (REDIS_URL,
# a key prefix of their own), behind a local nginx (config generated into the scratch dir,
# run in the foreground, upstream keepalive). Three topologies, each with GET
# /credits/balance reads and POST /credits/use on the hot account (reconciled like every
# spending run):
#   direct   wrk → instance A                        (the same instance without a proxy)
#   nginx-1  wrk → nginx → instance A                (what the proxy costs)
#   nginx-2  wrk → nginx → instances A and B         (what a second instance brings)
# Each instance's share comes from its own GET /metrics (http_requests_total by route).

# The generated nginx config: one server on PORT proxying to the given instance ports.
nginx_conf() { # nginx_conf DIR PORT...
    local dir=$1 p; shift
    cat <<EOF
worker_processes $NGINX_WORKERS;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream auth_service {
$(for p in "$@"; do echo "        server 127.0.0.1:$p;"; done)
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$PORT;
        location / {
            proxy_pass http://auth_service;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
    }
}
EOF
}

# nginx_start NAME PORT...: nginx in the foreground on PORT in front of the instances;
# sets LB_PID (its master).
nginx_start() {
    local name=$1 dir="$WORK/nginx-$1" log="$OUT/logs/$BACKEND-nginx-$1.log" t0; shift
    mkdir -p "$dir/tmp"
    nginx_conf "$dir" "$@" >"$dir/nginx.conf"
    cp "$dir/nginx.conf" "$OUT/logs/$BACKEND-nginx-$name.conf"
    "$NGINX" -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >>"$log" 2>&1 \
        || die "nginx rejects its config: $(tail -3 "$log")"
    "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' >>"$log" 2>&1 &
    LB_PID=$!
    EXTRA_PIDS+=("$LB_PID")
    t0=$(date +%s)
    until curl -s -o /dev/null -f --max-time 2 "$URL/health"; do
        kill -0 "$LB_PID" 2>/dev/null || die "nginx exited: $(tail -3 "$dir/error.log" "$log" 2>/dev/null)"
        (($(date +%s) - t0 < 30)) || die "nginx not answering after 30 s"
        sleep 0.05
    done
}
nginx_stop() {
    stop_pid "$LB_PID"
    cat "$WORK"/nginx-*/error.log >>"$OUT/logs/$BACKEND-nginx-errors.log" 2>/dev/null || true
    LB_PID=
}

# requests_by_route PORT ROUTE: the instance's http_requests_total for ROUTE (any status).
requests_by_route() {
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" 2>/dev/null |
        awk -v r="route=\"$2\"" '/^http_requests_total\{/ && index($0, r) { s += $NF } END { printf "%d", s }'
}

# split_run ROUTE KIND ARGS...: runs `KIND ARGS...` (load or use_run) and records how many
# requests of ROUTE each instance answered meanwhile.
split_run() {
    local route=$1 kind=$2 scenario=$3 conc=$4 port before=() after=() parts=() i
    local names=(A B C D); shift 2
    for port in "${SCALE_PORTS[@]}"; do before+=("$(requests_by_route "$port" "$route")"); done
    "$kind" "$@"
    for port in "${SCALE_PORTS[@]}"; do after+=("$(requests_by_route "$port" "$route")"); done
    for i in "${!SCALE_PORTS[@]}"; do parts+=("${names[i]}:$((after[i] - before[i]))"); done
    local IFS=,
    record "SPLIT backend=$BACKEND scenario=$scenario variant=$VARIANT conc=$conc instances=${parts[*]}"
}

# One topology: reads, then hot-account spending.
scaleout_phase() { # scaleout_phase VARIANT TARGET_URL PID...
    VARIANT=$1 TARGET_URL=$2; shift 2
    MEASURE_PIDS=("$@")
    local key=(-H "X-API-Key: $API_KEY")
    warmup 16 read.lua -- /credits/balance "$WORK/tokens.txt"
    split_run /credits/balance load scaleout-read "$SCALE_READ_CONC" read.lua -- /credits/balance "$WORK/tokens.txt"
    warmup 16 use.lua "${key[@]}" -- hot "$HOT_ID" "$USE_AMOUNT"
    split_run /credits/use use_run scaleout-use-hot "$SCALE_USE_CONC" "user_id = $HOT_ID" \
        "${key[@]}" -- hot "$HOT_ID" "$USE_AMOUNT"
}

SCALE_PORTS=()
scaleout_runs() { # scaleout_runs DATABASE_URL DATA_DIR (the main instance is stopped)
    local db_url=$1 data=$2 a b saved_env=("${SVC_ENV[@]}")
    local port_a=$((PORT + 1)) port_b=$((PORT + 2))
    local shared=(REDIS_URL="$REDIS_URL_BENCH" REDIS_KEY_PREFIX="auth-bench-$RUN_ID-$$:")
    log "$BACKEND scale-out: two instances (ports $port_a, $port_b) on one database and Redis"
    mkdir -p "$data/a" "$data/b"
    service_env "$db_url" "$data/a" "$port_a" "${shared[@]}"
    launch "$port_a" "$OUT/logs/$BACKEND-scaleout-a.log"
    a=$LAUNCHED_PID
    EXTRA_PIDS+=("$a")
    service_env "$db_url" "$data/b" "$port_b" "${shared[@]}"
    launch "$port_b" "$OUT/logs/$BACKEND-scaleout-b.log"
    b=$LAUNCHED_PID
    EXTRA_PIDS+=("$b")
    SCALE_PORTS=("$port_a" "$port_b")
    meta scaleout "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), worker_processes $NGINX_WORKERS, upstream keepalive 128; instances on ports $port_a and $port_b with REDIS_URL=$REDIS_URL_BENCH"

    scaleout_phase direct "http://127.0.0.1:$port_a" "$a"
    nginx_start one "$port_a"
    scaleout_phase nginx-1 "$URL" "$a"
    nginx_stop
    nginx_start two "$port_a" "$port_b"
    scaleout_phase nginx-2 "$URL" "$a" "$b"
    nginx_stop

    VARIANT='' TARGET_URL=$URL
    MEASURE_PIDS=()
    stop_pid "$a"
    stop_pid "$b"
    EXTRA_PIDS=()
    SCALE_PORTS=()
    SVC_ENV=("${saved_env[@]}")
}
