#!/usr/bin/env bash
# The portal in a real browser (issue 14): tests/portal/journeys.py drives
# Debian's Chromium with Playwright for Python through the real `cpis serve`
# (a duty team from the SMS link to the acknowledgement, a clinician's two
# checks, a council administrator's upload history and directory entry, and
# the denials), by keyboard alone, with axe-core run on every page.
# Installs what it needs: chromium (apt-get), Playwright (PyPI, pinned, in a
# venv; its own browser download is never used), axe-core (npm, pinned).
# Screenshots: target/portal-artifacts/. The service's log and outbox go to
# $CPIS_PRIVACY_CAPTURE_DIR for the privacy scan (suite 90), when set.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
target="${CARGO_TARGET_DIR:-$root/target}"

PLAYWRIGHT_VERSION=1.65.2
AXE_CORE_VERSION=4.14.1

if ! [ -x /usr/bin/chromium ]; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation >/dev/null
fi

venv="$target/portal-venv"
if ! "$venv/bin/python" -c "import playwright" 2>/dev/null; then
    python3 -m venv "$venv"
fi
# Never download Playwright's own browsers: the system Chromium is used.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "playwright==$PLAYWRIGHT_VERSION"

npm_dir="$target/portal-npm"
axe="$npm_dir/node_modules/axe-core/axe.min.js"
if ! grep -q "\"version\": \"$AXE_CORE_VERSION\"" "$npm_dir/node_modules/axe-core/package.json" 2>/dev/null; then
    mkdir -p "$npm_dir"
    npm install --silent --no-audit --no-fund --prefix "$npm_dir" "axe-core@$AXE_CORE_VERSION"
fi

# CPIS_BIN: a `cpis` binary built already (no build here).
if [[ -n ${CPIS_BIN:-} ]]; then
    cpis=$CPIS_BIN
else
    cargo build --locked --quiet --bin cpis
    cpis="$target/debug/cpis"
fi

"$venv/bin/python" tests/portal/journeys.py --cpis "$cpis" --axe "$axe" \
    --artifacts "$target/portal-artifacts" ${CPIS_PORTAL_DOCS:+--docs "$CPIS_PORTAL_DOCS"}
