#!/usr/bin/env bash
# The container really runs: builds the root Dockerfile (runtime stage for real, compile
# stage swapped for $AUTH_BIN), runs the image on the host network against the machine's
# PostgreSQL with a fresh database, and checks /health/ready, the image's HEALTHCHECK
# (`auth-service healthcheck`), the non-root user, and a register + login.
set -euo pipefail
source "$(dirname "$0")/lib/podman.sh"

NAME=auth-ci-check-$$
DB=authsvc_container_check
cleanup() {
    podman rm -f "$NAME" >/dev/null 2>&1 || true
    drop_database "$DB"
}
trap cleanup EXIT

build_image
echo "built $IMAGE from Dockerfile"
[ "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = auth ]
podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q 'healthcheck'

PORT=$(free_port)
URL=$(fresh_database "$DB")
podman run -d --name "$NAME" --network host \
    -e PORT="$PORT" -e DATABASE_URL="$URL" \
    -e SECRET_KEY=container-check-secret-key-0123456789abcdef \
    -e ENVIRONMENT=production -e RATE_LIMIT_AUTH_PER_MINUTE=1000 \
    "$IMAGE" >/dev/null
if ! wait_for_200 "http://127.0.0.1:$PORT/health/ready" 90; then
    podman logs "$NAME" | tail -30
    exit 1
fi
podman healthcheck run "$NAME" >/dev/null
[ "$(podman exec "$NAME" id -u)" = 10001 ]
register_and_login "http://127.0.0.1:$PORT"
echo "container check passed"
