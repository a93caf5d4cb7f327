#!/usr/bin/env python3
"""Counts the AWS calls a process makes, by operation, on their way to moto.

A plain HTTP proxy for the SDK's endpoint: point CPIS_MOTO_ENDPOINT at it
and it forwards every request to the moto server named by --moto, counting
each by its operation (DynamoDB's X-Amz-Target, SNS's and SQS's Action).
`GET /_counts` answers the counts so far as JSON and starts again from zero.
For BENCHMARKS.md, section 4 (the dispatcher's calls per ASN):

    python3 count_calls.py --port 48290 --moto http://127.0.0.1:48283 &
    CPIS_MOTO_ENDPOINT=http://127.0.0.1:48290 \\
    CPIS_COUNT_CALLS=http://127.0.0.1:48290/_counts \\
      cargo bench -p notification-dispatch --bench dispatch_batch -- --test

Only operation names are counted; no body is kept or printed.
"""

import argparse
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
COUNTS = Counter()
HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


def operation(headers, body):
    target = headers.get("X-Amz-Target")
    if target:
        return target.split(".")[-1]
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        return form.get("Action", ["?"])[0]
    except ValueError:
        return "?"


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    moto = ""

    def log_message(self, *args):
        pass

    def answer(self, status, headers, body):
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/_counts":
            with LOCK:
                counts = dict(COUNTS)
                COUNTS.clear()
            self.answer(200, [("Content-Type", "application/json")], json.dumps(counts).encode())
            return
        with LOCK:
            COUNTS[operation(self.headers, body)] += 1
        request = urllib.request.Request(
            self.moto + self.path,
            data=body if self.command != "GET" else None,
            method=self.command,
            headers={k: v for k, v in self.headers.items() if k.lower() not in HOP},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                self.answer(response.status, response.getheaders(), response.read())
        except urllib.error.HTTPError as error:
            self.answer(error.code, error.headers.items(), error.read())

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--moto", required=True)
    args = parser.parse_args()
    Proxy.moto = args.moto.rstrip("/")
    ThreadingHTTPServer(("127.0.0.1", args.port), Proxy).serve_forever()


if __name__ == "__main__":
    main()
