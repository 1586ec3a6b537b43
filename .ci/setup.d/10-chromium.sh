#!/usr/bin/env bash
# Chromium and ChromeDriver for the web pages' browser tests (tests/api/web_browser.rs).
# Debian's packages: /usr/bin/chromium and /usr/bin/chromedriver. Idempotent.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "chromium and chromedriver are installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "chromium/chromedriver missing and not root: install the packages chromium and chromium-driver" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends chromium chromium-driver
