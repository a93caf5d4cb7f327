#!/usr/bin/env bash
# The portal's production sign-in in a real browser (issue 14):
# tests/portal/oidc_journey.py signs a clinician and a duty team in through a
# real OpenID provider (`oidc-provider` from npm, pinned in
# tests/oidc/package-lock.json, started on 127.0.0.1 by the journey) with the
# authorization code flow and PKCE, through the real `cpis serve`, lands the
# duty team on the page its SMS link named, and refuses replayed, stolen and
# made-up callbacks; axe-core on every portal page on the way.
# Installs what it needs, as suite 65 does (and shares its venv and axe-core):
# chromium (apt-get), Playwright (PyPI, pinned), axe-core and oidc-provider
# (npm ci from the committed lock file). Screenshots:
# target/portal-oidc-artifacts/. The service's and the provider's logs go to
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
if ! command -v node >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

venv="$target/portal-venv"
if ! "$venv/bin/python" -c "import playwright" 2>/dev/null; then
    python3 -m venv "$venv"
fi
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "playwright==$PLAYWRIGHT_VERSION"

npm_dir="$target/portal-npm"
axe="$npm_dir/node_modules/axe-core/axe.min.js"
if ! grep -q "\"version\": \"$AXE_CORE_VERSION\"" "$npm_dir/node_modules/axe-core/package.json" 2>/dev/null; then
    mkdir -p "$npm_dir"
    npm install --silent --no-audit --no-fund --prefix "$npm_dir" "axe-core@$AXE_CORE_VERSION"
fi

# The provider runs from its own directory (an ES module finds its packages
# beside it): the committed files copied there, `npm ci` when the lock moved.
provider="$target/oidc-provider"
mkdir -p "$provider"
cp tests/oidc/package.json tests/oidc/provider.mjs "$provider/"
if ! cmp -s tests/oidc/package-lock.json "$provider/package-lock.json" \
    || ! [ -d "$provider/node_modules/oidc-provider" ]; then
    cp tests/oidc/package-lock.json "$provider/"
    (cd "$provider" && npm ci --silent --no-audit --no-fund)
fi

if [[ -n ${CPIS_BIN:-} ]]; then
    cpis=$CPIS_BIN
else
    cargo build --locked --quiet --bin cpis
    cpis="$target/debug/cpis"
fi

"$venv/bin/python" tests/portal/oidc_journey.py --cpis "$cpis" --provider "$provider" \
    --axe "$axe" --artifacts "$target/portal-oidc-artifacts"
