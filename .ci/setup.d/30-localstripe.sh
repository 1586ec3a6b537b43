#!/usr/bin/env bash
# The fake Stripe server the billing tests run against: localstripe from PyPI, a pinned
# version, in a virtualenv under $AUTH_TOOLS_DIR/localstripe (idempotent).
set -euo pipefail

VERSION=1.15.10
TOOLS=${AUTH_TOOLS_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/.tools}
DEST=$TOOLS/localstripe

if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt-get update
    apt-get install -y python3 python3-venv
fi

if [ -x "$DEST/bin/localstripe" ] && "$DEST/bin/pip" show localstripe 2>/dev/null | grep -q "^Version: $VERSION\$"; then
    echo "localstripe $VERSION already installed in $DEST"
    exit 0
fi

python3 -m venv "$DEST"
"$DEST/bin/pip" install --quiet "localstripe==$VERSION"
echo "localstripe $VERSION installed in $DEST"
