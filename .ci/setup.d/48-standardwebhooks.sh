#!/usr/bin/env bash
# The official Standard Webhooks library (PyPI `standardwebhooks`) in a venv, for the
# receivers of tests/api/webhooks_out/ that judge our signatures. Idempotent.
set -euo pipefail
: "${AUTH_TOOLS_DIR:?set AUTH_TOOLS_DIR}"
VENV="$AUTH_TOOLS_DIR/standardwebhooks-venv"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
    echo "standardwebhooks is installed in $VENV"
    exit 0
fi
python3 -m venv "$VENV" || { apt-get update && apt-get install -y --no-install-recommends python3-venv && python3 -m venv "$VENV"; }
"$VENV/bin/pip" install --quiet 'standardwebhooks==1.0.0'
"$VENV/bin/python" -c 'import standardwebhooks; print("standardwebhooks installed in '"$VENV"'")'
