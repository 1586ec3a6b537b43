#!/usr/bin/env bash
# deploy/ checked by tools, not by eye:
#  - deploy/k8s/*.yaml against the Kubernetes schemas (kubernetes-validate, PyPI);
#  - deploy/compose.yaml parsed and merged by podman-compose (PyPI), then brought up as far
#    as the auth service answering on PostgreSQL. The postgres, redis, mailpit and nginx
#    images cannot be pulled here, so an override (written below, not in the repository)
#    runs only `auth1` from the locally built image on the host network, against the
#    machine's own PostgreSQL and Redis. The full stack is what README "Deploying" runs.
set -euo pipefail
source "$(dirname "$0")/lib/podman.sh"

VENV=$TOOLS/venv-deploy
if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/podman-compose" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q kubernetes-validate podman-compose
fi

echo "kubernetes-validate deploy/k8s"
manifests=()
for f in "$ROOT"/deploy/k8s/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
"$VENV/bin/kubernetes-validate" --strict "${manifests[@]}"
for kind in Deployment Service ConfigMap Secret PodDisruptionBudget HorizontalPodAutoscaler; do
    grep -qx "kind: $kind" "${manifests[@]}" || { echo "no $kind in deploy/k8s" >&2; exit 1; }
done
grep -q '^  replicas: 2$' "$ROOT/deploy/k8s/deployment.yaml"

NAME=auth-service
DB=authsvc_compose_check
WORK=$(mktemp -d)
COMPOSE=("$VENV/bin/podman-compose" --podman-args="--runtime runc" -p authsvc-check
    -f "$ROOT/deploy/compose.yaml" -f "$WORK/override.yaml")
cleanup() {
    "${COMPOSE[@]}" down >/dev/null 2>&1 || true
    drop_database "$DB"
    rm -rf "$WORK"
}
trap cleanup EXIT

build_image
PORT=$(free_port)
URL=$(fresh_database "$DB")
cat >"$WORK/override.yaml" <<YAML
services:
  auth1:
    image: $IMAGE
    network_mode: host
    environment:
      PORT: "$PORT"
      DATABASE_URL: $URL
      REDIS_URL: ${REDIS_URL:-redis://127.0.0.1:6379}
      MAIL_SERVER: ""
      TRUSTED_PROXIES: 127.0.0.1/32
      PUBLIC_URL: http://127.0.0.1:$PORT
YAML

# compose.yaml has no default SECRET_KEY (it refuses to start without one).
export SECRET_KEY=${SECRET_KEY:-compose-check-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')}
echo "podman-compose config"
"${COMPOSE[@]}" config >"$WORK/merged.yaml"
for service in auth1 auth2 postgres redis mailpit nginx; do
    grep -q "^  $service:" "$WORK/merged.yaml" || { echo "compose has no $service" >&2; exit 1; }
done
grep -q 'TRUSTED_PROXIES' "$WORK/merged.yaml"

echo "podman-compose up auth1 (host network, local PostgreSQL)"
"${COMPOSE[@]}" up -d --no-deps auth1 >/dev/null
if ! wait_for_200 "http://127.0.0.1:$PORT/health/ready" 90; then
    "${COMPOSE[@]}" logs auth1 | tail -30
    exit 1
fi
register_and_login "http://127.0.0.1:$PORT"
echo "deploy manifests check passed"
