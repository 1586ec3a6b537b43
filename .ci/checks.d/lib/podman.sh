# Shared by the container and compose checks (sourced, not run): podman configured for
# these machines (runc, cgroupfs, no default ulimits), a Debian bookworm base made locally
# with debootstrap (no image registry is reachable), and the project's Dockerfile built
# with only its compile stage swapped for the binary built on the host.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
TOOLS=${AUTH_TOOLS_DIR:-$ROOT/.tools}
BIN=${AUTH_BIN:-$ROOT/target/debug/auth-service}
IMAGE=localhost/auth-service:ci-check
BASE=docker.io/library/debian:bookworm-slim
mkdir -p "$TOOLS/podman"

ensure_packages() {
    local missing=()
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

ensure_packages podman runc debootstrap curl psql 2>/dev/null || true
command -v psql >/dev/null || { apt-get install -y -qq postgresql-client >/dev/null; }

export CONTAINERS_CONF=$TOOLS/podman/containers.conf
cat >"$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
CONF
podman() { command podman --runtime runc "$@"; }

# The Debian URI apt already uses on this machine (deb822 .sources or classic lines).
debian_mirror() {
    local uri
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
    if [ -z "$uri" ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1)
    fi
    printf '%s' "$uri"
}

ensure_base_image() {
    if podman image exists "$BASE"; then
        return
    fi
    local tarball=$TOOLS/podman/debian-bookworm-minbase.tar
    if [ ! -s "$tarball" ]; then
        local mirror rootfs
        mirror=$(debian_mirror)
        [ -n "$mirror" ] || { echo "no Debian mirror in the apt sources" >&2; return 1; }
        rootfs=$(mktemp -d)
        echo "debootstrap bookworm minbase (about a minute)"
        debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" >/dev/null
        tar -C "$rootfs" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
    fi
    podman import "$tarball" "$BASE" >/dev/null
}

# Builds the root Dockerfile; the `build` stage is replaced by a directory holding the
# host-built binary at the path the runtime stage copies from.
build_image() {
    ensure_base_image
    [ -x "$BIN" ] || { echo "no binary at $BIN (cargo build first)" >&2; return 1; }
    local context
    context=$(mktemp -d)
    mkdir -p "$context/app/target/release"
    cp "$BIN" "$context/app/target/release/auth-service"
    podman build --quiet --pull=never --format docker --build-context "build=$context" \
        -t "$IMAGE" "$ROOT" >/dev/null
    rm -rf "$context"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PG_SERVER=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# A new empty database on the machine's PostgreSQL; prints its URL.
fresh_database() {
    local name=$1
    psql "$PG_SERVER" -qc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null
    psql "$PG_SERVER" -qc "CREATE DATABASE \"$name\"" >/dev/null
    printf '%s/%s' "${PG_SERVER%/*}" "$name"
}

drop_database() {
    psql "$PG_SERVER" -qc "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1 || true
}

# Waits for URL to answer 200 (up to $2 seconds).
wait_for_200() {
    local url=$1 deadline=$((SECONDS + ${2:-60}))
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ]; do
        if [ $SECONDS -ge $deadline ]; then
            echo "$url did not answer 200" >&2
            return 1
        fi
        sleep 1
    done
}

# Registers a user and logs in at BASE_URL; fails unless both succeed.
register_and_login() {
    local base=$1 user="ci$RANDOM$RANDOM" code
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "{\"username\":\"$user\",\"email\":\"$user@example.com\",\"password\":\"correct horse battery\"}" \
        "$base/auth/register")
    [ "$code" = 201 ] || { echo "register answered $code" >&2; return 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' \
        --data-urlencode "username=$user" --data-urlencode "password=correct horse battery" \
        "$base/auth/login")
    [ "$code" = 200 ] || { echo "login answered $code" >&2; return 1; }
    echo "registered and logged in as $user at $base"
}
