#!/usr/bin/env bash
# The third-party JWT verifiers the signing-key tests use as judges (tests/api/jwks_verifiers.rs):
# PyJWT[crypto] in a venv under $AUTH_TOOLS_DIR/jwt-verifiers/venv and npm `jose` under
# $AUTH_TOOLS_DIR/jwt-verifiers/node. Pinned versions, idempotent.
set -euo pipefail

PYJWT_VERSION=2.15.1
JOSE_VERSION=6.2.18
TOOLS=${AUTH_TOOLS_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/.tools}
DEST=$TOOLS/jwt-verifiers

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt-get update
    apt-get install -y nodejs npm
fi

mkdir -p "$DEST"
if [ -x "$DEST/venv/bin/python" ] && "$DEST/venv/bin/python" -c "import jwt, cryptography, sys; sys.exit(jwt.__version__ != '$PYJWT_VERSION')"; then
    echo "PyJWT $PYJWT_VERSION already installed in $DEST/venv"
else
    python3 -m venv "$DEST/venv"
    "$DEST/venv/bin/pip" install --quiet "PyJWT[crypto]==$PYJWT_VERSION"
    echo "PyJWT $PYJWT_VERSION installed in $DEST/venv"
fi

MARKER=$DEST/node/node_modules/jose/package.json
if [ -f "$MARKER" ] && grep -q "\"version\": \"$JOSE_VERSION\"" "$MARKER"; then
    echo "jose $JOSE_VERSION already installed in $DEST/node"
else
    mkdir -p "$DEST/node"
    npm install --no-audit --no-fund --prefix "$DEST/node" "jose@$JOSE_VERSION"
    echo "jose $JOSE_VERSION installed in $DEST/node"
fi
