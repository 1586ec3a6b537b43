#!/usr/bin/env bash
# The OpenID Connect provider the oidc tests sign in against: oauth2-mock-server from npm,
# a pinned version, installed under $AUTH_TOOLS_DIR/oidc-provider (idempotent).
set -euo pipefail

VERSION=9.3.0
TOOLS=${AUTH_TOOLS_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/.tools}
DEST=$TOOLS/oidc-provider
MARKER=$DEST/node_modules/oauth2-mock-server/package.json

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt-get update
    apt-get install -y nodejs npm
fi

if [ -f "$MARKER" ] && grep -q "\"version\": \"$VERSION\"" "$MARKER"; then
    echo "oauth2-mock-server $VERSION already installed in $DEST"
    exit 0
fi

mkdir -p "$DEST"
npm install --no-audit --no-fund --prefix "$DEST" "oauth2-mock-server@$VERSION"
echo "oauth2-mock-server $VERSION installed in $DEST"
