#!/usr/bin/env python3
"""A council's end of MESH, with NHS England's own client (PyPI mesh-client,
pinned in tests/requirements-mesh.txt): for tests and the README walkthrough.

  mesh_council.py send --mailbox X26ABC1 --to X26ABC2 --workflow W --file PATH
                       [--local-id L] [--subject S] [--compress]
      sends the file (Mex-FileName: its base name); prints MESH's message id.

  mesh_council.py receive --mailbox X26ABC1 --out DIR [--workflow W] [--wait SECONDS]
      downloads every message in the inbox (only workflow W's, if given),
      writes each as DIR/<message id>_<Mex-FileName> with its Mex-* headers
      as JSON beside it (<same name>.json), acknowledges it, and prints each
      file's path. With --wait, polls until at least one message came or the
      seconds ran out (then exits 1); without, an empty inbox is fine.

The sandbox's URL is --url, else $CPIS_MESH_SANDBOX_URL, else the one
tests/mesh_sandbox.sh start last wrote (target/mesh-sandbox/url). Password
`password` and shared key `TestKey` (the sandbox's) unless --password /
--shared-key say otherwise. Run it with any python3: it re-runs itself in
target/mesh-venv (made by tests/mesh_sandbox.sh) when mesh_client is not
importable.
"""

import argparse
import json
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
VENV_PYTHON = os.path.join(TARGET, "mesh-venv", "bin", "python")

try:
    from mesh_client import MeshClient
except ImportError:
    # (The venv's python is a symlink to this very interpreter: compare the
    # prefixes, not the executables.)
    if os.path.exists(VENV_PYTHON) and os.path.realpath(sys.prefix) != os.path.realpath(os.path.dirname(os.path.dirname(VENV_PYTHON))):
        os.execv(VENV_PYTHON, [VENV_PYTHON, *sys.argv])
    sys.exit("mesh_council.py: mesh_client is not installed; run tests/mesh_sandbox.sh venv first")


def sandbox_url(given):
    if given:
        return given
    if os.environ.get("CPIS_MESH_SANDBOX_URL"):
        return os.environ["CPIS_MESH_SANDBOX_URL"]
    try:
        with open(os.path.join(TARGET, "mesh-sandbox", "url"), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        sys.exit("mesh_council.py: no sandbox URL: give --url, set CPIS_MESH_SANDBOX_URL, "
                 "or start one with tests/mesh_sandbox.sh start")


def client(args):
    return MeshClient(sandbox_url(args.url), args.mailbox, args.password,
                      shared_key=args.shared_key.encode("utf-8"), max_retries=0, timeout=60)


def safe_name(name):
    """A file name that stays inside DIR, whatever the sender called it."""
    base = os.path.basename(name or "")
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")
    return base or "message.dat"


def send(args):
    with open(args.file, "rb") as f:
        body = f.read()
    with client(args) as mesh:
        mesh.handshake()
        options = {"workflow_id": args.workflow, "filename": os.path.basename(args.file),
                   "content_type": "application/xml"}
        if args.local_id:
            options["local_id"] = args.local_id
        if args.subject:
            options["subject"] = args.subject
        message_id = mesh.send_message(args.to, body, compress=args.compress, **options)
    print(message_id)
    return 0


def receive(args):
    os.makedirs(args.out, exist_ok=True)
    deadline = time.monotonic() + (args.wait or 0)
    received = 0
    with client(args) as mesh:
        mesh.handshake()
        while True:
            for message_id in list(mesh.iterate_message_ids(workflow_filter=args.workflow)):
                message = mesh.retrieve_message(message_id)
                try:
                    body = message.read()
                    headers = {"mex-" + key: value for key, value in message.mex_headers()}
                finally:
                    message.close()
                path = os.path.join(args.out, f"{safe_name(message_id)}_{safe_name(message.filename)}")
                with open(path, "wb") as f:
                    f.write(body)
                with open(path + ".json", "w", encoding="utf-8") as f:
                    json.dump(headers, f, indent=2, sort_keys=True)
                # Acknowledged only once both files are written.
                mesh.acknowledge_message(message_id)
                print(path)
                received += 1
            if received or not args.wait or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
    if args.wait and not received:
        print(f"mesh_council.py: nothing arrived in {args.mailbox} within {args.wait} s", file=sys.stderr)
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("send", "receive"):
        p = sub.add_parser(name)
        p.add_argument("--mailbox", required=True, help="this council's mailbox, e.g. X26ABC1")
        p.add_argument("--url", help="the MESH (sandbox) base URL")
        p.add_argument("--password", default="password")
        p.add_argument("--shared-key", default=os.environ.get("MESH_SHARED_KEY", "TestKey"))
        if name == "send":
            p.add_argument("--to", required=True, help="recipient mailbox, e.g. X26ABC2")
            p.add_argument("--workflow", required=True, help="Mex-WorkflowID")
            p.add_argument("--file", required=True)
            p.add_argument("--local-id", help="Mex-LocalID")
            p.add_argument("--subject", help="Mex-Subject")
            p.add_argument("--compress", action="store_true", help="gzip the transfer")
        else:
            p.add_argument("--out", required=True, help="directory for the files")
            p.add_argument("--workflow", help="only this Mex-WorkflowID's messages")
            p.add_argument("--wait", type=float, default=0, help="seconds to wait for a first message")
    args = parser.parse_args()
    return send(args) if args.command == "send" else receive(args)


if __name__ == "__main__":
    sys.exit(main())
