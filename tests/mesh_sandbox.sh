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
#   tests/mesh_sandbox.sh start-at DIR   another, plain http, with its store, pid and
#                                 URL in DIR (scripts/aws-rehearsal.sh: its own, like its moto)
#   tests/mesh_sandbox.sh stop-at DIR
#   tests/mesh_sandbox.sh start-tls DIR   another on https that demands a
#                                 client certificate (certificates made in DIR)
#   tests/mesh_sandbox.sh stop-tls DIR
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

# The pid in DIR/pid, if it is still a sandbox this script started.
running_pid() {
  local pid
  pid=$(cat "$1/pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'mesh_sandbox_app:app' || return 1
  echo "$pid"
}

# stop_in DIR: stops the sandbox whose pid is in DIR/pid.
stop_in() {
  local pid
  if pid=$(running_pid "$1"); then
    kill "$pid" 2>/dev/null || true
    # Wait for it to go (uvicorn shuts down within a second or two).
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1/pid" "$1/url"
}

# launch DIR LOG SCHEME [uvicorn TLS options]: starts the sandbox on a free
# port with an empty store in DIR/store; writes DIR/pid and DIR/url; prints
# the URL once /health answers (through the TLS options' CA and client
# certificate, when given).
launch() {
  local dir=$1 log=$2 scheme=$3
  shift 3
  stop_in "$dir"
  rm -rf "$dir/store"
  mkdir -p "$dir/store"
  local port
  port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  # Detached from our stdout, so `url=$(mesh_sandbox.sh start)` returns. The
  # app is mesh-sandbox's own with its log lines made scannable
  # (tests/mesh_sandbox_app.py); the sandbox logs every request itself, so
  # uvicorn's access log (client ports next to numbers) is off.
  AUTH_MODE=full SHARED_KEY=TestKey STORE_MODE=file MAILBOXES_DATA_DIR="$dir/store" \
    "$venv/bin/python" -m uvicorn mesh_sandbox_app:app --app-dir "$root/tests" \
    --host 127.0.0.1 --port "$port" --workers 1 --no-access-log "$@" \
    </dev/null >>"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/pid"
  local url="$scheme://127.0.0.1:$port"
  local certs=()
  [ "$scheme" = https ] && certs=("$dir/ca.pem" "$dir/client.pem" "$dir/client.key")
  for _ in $(seq 1 300); do
    if "$venv/bin/python" - "$url" "${certs[@]}" 2>/dev/null <<'PY'
import ssl, sys, urllib.request
url, *certs = sys.argv[1:]
context = None
if certs:
    context = ssl.create_default_context(cafile=certs[0])
    context.load_cert_chain(certs[1], certs[2])
urllib.request.urlopen(url + "/health", timeout=2, context=context)
PY
    then
      echo "$url" >"$dir/url"
      echo "$url"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "mesh_sandbox.sh: mesh-sandbox did not become healthy at $url; its log ($log) ends:" >&2
  tail -n 30 "$log" >&2 || true
  stop_in "$dir"
  return 1
}

# Where a sandbox's log goes: the privacy capture when there is one.
log_file() {
  if [ -n "${CPIS_PRIVACY_CAPTURE_DIR:-}" ]; then
    mkdir -p "$CPIS_PRIVACY_CAPTURE_DIR"
    echo "$CPIS_PRIVACY_CAPTURE_DIR/$1-logs.txt"
  else
    echo "$2"
  fi
}

start() {
  make_venv
  mkdir -p "$state"
  launch "$state" "$(log_file mesh-sandbox "$state/sandbox.log")" http
}

# Another plain sandbox, all of its state in DIR: one that a script starts and
# stops for itself without touching the one `start` started.
start_at() {
  local dir=${1:?usage: $0 start-at DIR}
  make_venv
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  launch "$dir" "$(log_file "mesh-sandbox-$(basename "$dir")" "$dir/sandbox.log")" http
}

# A second sandbox that speaks TLS and demands a client certificate, as live
# MESH does (mesh-sandbox itself asks for none): throwaway CA, server and
# client certificates in DIR (tests/mesh_tls_certs.py).
start_tls() {
  local dir=${1:?usage: $0 start-tls DIR}
  make_venv
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  "$venv/bin/python" "$root/tests/mesh_tls_certs.py" "$dir" >&2
  launch "$dir" "$(log_file "mesh-sandbox-tls-$(basename "$dir")" "$dir/sandbox.log")" https \
    --ssl-certfile "$dir/server.pem" --ssl-keyfile "$dir/server.key" \
    --ssl-ca-certs "$dir/ca.pem" --ssl-cert-reqs 2
}

case "${1:-}" in
  venv) make_venv ;;
  start) start ;;
  stop) stop_in "$state" ;;
  start-at) start_at "${2:-}" ;;
  stop-at) stop_in "${2:?usage: $0 stop-at DIR}" ;;
  start-tls) start_tls "${2:-}" ;;
  stop-tls) stop_in "${2:?usage: $0 stop-tls DIR}" ;;
  *) echo "usage: $0 venv | start | stop | start-at DIR | stop-at DIR | start-tls DIR | stop-tls DIR" >&2; exit 2 ;;
esac
