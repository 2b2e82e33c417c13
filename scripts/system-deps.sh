#!/usr/bin/env bash
# System packages the tests need beyond Python: headless Chromium renders the stats report in a test.
# Installed through apt when missing and we are root (CI, fresh machines); otherwise say what to install.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (headless report rendering test) ..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
    echo "warning: chromium not found; the report rendering test needs it: sudo apt-get install chromium" >&2
fi
