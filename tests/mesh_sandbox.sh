#!/usr/bin/env bash
# NHS England's MESH sandbox (PyPI mesh-sandbox, pinned in
# tests/requirements-mesh.txt) on 127.0.0.1, for the tests and the README
# walkthrough. Its mailboxes are X26ABC1, X26ABC2 (ODS X26) and X26ABC3
# (ODS X27), password `password`; the shared key is TestKey; every request's
# NHSMESH token is checked (AUTH_MODE=full); messages are kept in files under
# target/mesh-sandbox/store, emptied at each start.
#
#   tests/mesh_sandbox.sh venv    make target/mesh-venv (mesh-sandbox, mesh-client)
#   tests/mesh_sandbox.sh start   start it on a free port; prints its URL
#   tests/mesh_sandbox.sh stop    stop the one `start` started
#
# Its log goes to $CPIS_PRIVACY_CAPTURE_DIR/mesh-sandbox-logs.txt when that is
# set (tests/run.sh: the privacy scan reads it), else target/mesh-sandbox/sandbox.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
venv="$target/mesh-venv"
state="$target/mesh-sandbox"
requirements="$root/tests/requirements-mesh.txt"

# A Python that mesh-sandbox supports (>= 3.11, < 3.14).
find_python() {
  for candidate in python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 14)))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "mesh_sandbox.sh: mesh-sandbox needs Python 3.11 to 3.13; none found" >&2
  return 1
}

make_venv() {
  # Up to date when the venv was made from these very requirements.
  if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$venv/.cpis-requirements.txt"; then
    return 0
  fi
  local python
  python=$(find_python)
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    # Debian splits ensurepip out of the interpreter.
    local sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq >&2
    $sudo_cmd apt-get install -y -qq python3-venv >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$venv/.cpis-requirements.txt"
}

# The pid in the pid file, if it is still our sandbox.
running_pid() {
  local pid
  pid=$(cat "$state/pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'mesh_sandbox_app:app' || return 1
  echo "$pid"
}

stop() {
  local pid
  if pid=$(running_pid); then
    kill "$pid" 2>/dev/null || true
    # Wait for it to go (uvicorn shuts down within a second or two).
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$state/pid" "$state/url"
}

start() {
  make_venv
  stop
  mkdir -p "$state"
  rm -rf "$state/store"
  mkdir -p "$state/store"
  local log="$state/sandbox.log"
  if [ -n "${CPIS_PRIVACY_CAPTURE_DIR:-}" ]; then
    mkdir -p "$CPIS_PRIVACY_CAPTURE_DIR"
    log="$CPIS_PRIVACY_CAPTURE_DIR/mesh-sandbox-logs.txt"
  fi
  local port
  port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  # Detached from our stdout, so `url=$(mesh_sandbox.sh start)` returns. The
  # app is mesh-sandbox's own with its log lines made scannable
  # (tests/mesh_sandbox_app.py); the sandbox logs every request itself, so
  # uvicorn's access log (client ports next to numbers) is off.
  AUTH_MODE=full SHARED_KEY=TestKey STORE_MODE=file MAILBOXES_DATA_DIR="$state/store" \
    "$venv/bin/python" -m uvicorn mesh_sandbox_app:app --app-dir "$root/tests" \
    --host 127.0.0.1 --port "$port" --workers 1 --no-access-log \
    </dev/null >>"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$state/pid"
  local url="http://127.0.0.1:$port"
  for _ in $(seq 1 300); do
    if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/health', timeout=2)" "$url" 2>/dev/null; then
      echo "$url" >"$state/url"
      echo "$url"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "mesh_sandbox.sh: mesh-sandbox did not become healthy at $url; its log ($log) ends:" >&2
  tail -n 30 "$log" >&2 || true
  stop
  return 1
}

case "${1:-}" in
  venv) make_venv ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 venv|start|stop" >&2; exit 2 ;;
esac
