#!/usr/bin/env bash
# pyotp (PyPI) in a venv: the independent TOTP implementation tests/api/mfa.rs checks
# the server's codes against. Installs into $AUTH_TOOLS_DIR/pyotp. Idempotent.
set -euo pipefail

: "${AUTH_TOOLS_DIR:?set AUTH_TOOLS_DIR}"
venv="$AUTH_TOOLS_DIR/pyotp"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import pyotp' 2>/dev/null; then
    echo "pyotp is installed in $venv"
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet pyotp
"$venv/bin/python" -c 'import pyotp; print("pyotp", pyotp.__version__ if hasattr(pyotp, "__version__") else "installed")'
