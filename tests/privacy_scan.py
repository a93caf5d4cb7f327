#!/usr/bin/env python3
"""Privacy scan (issue 7, suite 6): nothing the test suite made the service
put out may carry an NHS number, a date of birth or a fixture name.

What is scanned (outputs only; the tests' own request bodies legitimately
hold NHS numbers and are not collected):
  * every file under the capture directory (CPIS_PRIVACY_CAPTURE_DIR), which
    the tests fill when it is set: the `cpis` binary's log lines, every error
    response body, every response header of the in-process router tests
    (cpis_http::testing: the echoed request id), the audit trail those tests
    read (crates/http/tests/common: trace ids, actors, pseudonyms), the local SMS/email outbox, what the fault harnesses
    delivered (crates/cpis/tests/common/mod.rs, the fault_harness tests);
  * moto's record of every SQS message body ever sent (deleted ones too) and
    every SNS notification published, from <moto>/moto-api/data.json.

What counts as a hit:
  * an NHS number in any grouping: digit groups joined by single characters
    that are neither letters nor digits (999 000 0018, 999-000-0018,
    999.000/0018, 99900 00018, 9-9-9-0-0-0-0-0-1-8, ...) whose whole chain
    is ten digits, a single group of ten, or 3-3-4 run on from a time or a
    date; passing Modulus 11 and not a placeholder (all digits the same).
    The same rule as crates/domain's find_nhs_numbers; both are held to
    tests/fixtures/nhs_number_groupings.json. UUIDs (the service's opaque
    references) and mesh-sandbox's message ids (32 hex digits standing
    alone) are masked first: their hex can hold ten decimal digits by chance
    (about 1 id in 300 does, and passes Modulus 11). So are AWS X-Ray trace
    ids (`1-` 8 hex `-` 24 hex) and the 16-hex parent/self segment ids in
    an X-Ray trace header, which the Lambda runtime logs beside every line
    (a CI run failed on one whose hex held ten digits passing Modulus 11);
  * a date-of-birth field carrying a value (`"date_of_birth": "..."`,
    `dob=...`, FHIR `birthDate`), in any common spelling;
  * the fixture names and dates of birth in tests/privacy_fixtures.json.

Fails (exit 1) on any hit, and also if there is (next to) nothing to scan:
no capture directory, or fewer than MINIMUM of any kind (log characters,
error-body characters, message characters, SQS messages, SNS
notifications). A scan of nothing proves nothing, and neither does a scan of
a capture a broken hook left nearly empty.

Usage: privacy_scan.py --capture-dir DIR [--moto URL] | --self-test
"""

import argparse
import json
import os
import re
import sys
import urllib.request

ROOT = os.path.dirname(os.path.abspath(__file__))

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# mesh-sandbox's message ids: uuid4().hex.upper(), a whole token (a bare NHS
# number beside one is still found).
MESH_SANDBOX_ID = re.compile(r"(?<![0-9A-Za-z])[0-9A-F]{32}(?![0-9A-Za-z])")
# X-Ray trace ids and the segment ids of a trace header (Root=...;Parent=...;
# Self=...): random hex, each a whole token.
XRAY_TRACE_ID = re.compile(r"(?<![0-9A-Za-z-])1-[0-9a-f]{8}-[0-9a-f]{24}(?![0-9A-Za-z])")
XRAY_SEGMENT_ID = re.compile(r"\b(Parent|Self)=[0-9a-f]{16}(?![0-9A-Za-z])")
DIGIT_GROUP = re.compile(r"[0-9]+")
# Floors well under a full run's capture (docs/assurance.md: 2.3 M characters
# of logs, 0.4 M of error bodies, 1.4 M of messages, 1,015 SQS bodies, 218 SNS
# notifications), well over what a broken capture hook leaves.
MINIMUM = {"logs": 100_000, "error bodies": 20_000, "response headers": 20_000,
           "audit trail": 20_000, "messages": 50_000,
           "SQS messages": 50, "SNS notifications": 10}
DOB_FIELD = re.compile(
    r"""(?ix)
    ["']?\b(date[\s_-]?of[\s_-]?birth|birth[\s_-]?date|dob)\b["']?   # the field's name
    \s*[:=]\s*                                                      # then a value
    (?!null\b|none\b|""|'')["']?[0-9A-Za-z]
    """
)


def passes_modulus_11(digits):
    """NHS number check: weights 10..2 on digits 1-9; 11 -> 0; 10 is invalid."""
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1)))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def single_separator(between):
    return len(between) == 1 and not between.isalnum()


def nhs_numbers(text):
    """Every NHS number in `text`, as written there (see the module doc)."""
    masked = UUID.sub("<uuid>", text)
    masked = MESH_SANDBOX_ID.sub("<mesh-id>", masked)
    masked = XRAY_TRACE_ID.sub("<xray-trace>", masked)
    masked = XRAY_SEGMENT_ID.sub(r"\1=<xray-segment>", masked)
    groups = [m.span() for m in DIGIT_GROUP.finditer(masked)]
    spans = set()
    first = 0
    while first < len(groups):
        last = first
        while last + 1 < len(groups) and single_separator(masked[groups[last][1]:groups[last + 1][0]]):
            last += 1
        chain = groups[first:last + 1]
        lengths = [end - start for start, end in chain]
        spans.update(group for group, n in zip(chain, lengths) if n == 10)
        if len(chain) > 1 and sum(lengths) == 10:
            spans.add((chain[0][0], chain[-1][1]))
        for k in range(len(chain) - 2):
            if lengths[k:k + 3] == [3, 3, 4]:
                spans.add((chain[k][0], chain[k + 2][1]))
        first = last + 1
    found = []
    for start, end in sorted(spans):
        digits = "".join(c for c in masked[start:end] if "0" <= c <= "9")
        if len(digits) == 10 and len(set(digits)) > 1 and passes_modulus_11(digits):
            found.append(masked[start:end])
    return found


def load_fixtures():
    with open(os.path.join(ROOT, "privacy_fixtures.json"), encoding="utf-8") as f:
        fixtures = json.load(f)
    values = fixtures["names"] + fixtures["dates_of_birth"]
    if not values:
        raise SystemExit("privacy scan: tests/privacy_fixtures.json lists nothing")
    return values


def scan_text(source, text, fixtures):
    """Hits in one text, each as a line for the report (never the hit's
    whole context: the report itself must not spread what it found)."""
    hits = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for number in nhs_numbers(line):
            hits.append(f"{source}:{lineno}: a 10-digit string passing Modulus 11 ({number[:3]}*******)")
        if DOB_FIELD.search(line):
            hits.append(f"{source}:{lineno}: a date-of-birth field with a value")
        lowered = line.lower()
        for value in fixtures:
            if value.lower() in lowered:
                hits.append(f"{source}:{lineno}: the fixture value {value!r}")
    return hits


def classify(name):
    if name.endswith("-logs.txt"):
        return "logs"
    if name.endswith("-response-headers.txt"):
        return "response headers"
    if name.endswith("-audit-trail.txt"):
        return "audit trail"
    if name.endswith("-error-bodies.txt"):
        return "error bodies"
    return "messages"


def scan_capture_dir(directory, fixtures):
    if not os.path.isdir(directory):
        raise SystemExit(f"privacy scan: the capture directory {directory} does not exist; "
                         "run the tests with CPIS_PRIVACY_CAPTURE_DIR set (tests/run.sh does)")
    hits, sizes = [], {"logs": 0, "error bodies": 0, "response headers": 0, "audit trail": 0,
                       "messages": 0}
    files = 0
    for base, _, names in os.walk(directory):
        for name in sorted(names):
            path = os.path.join(base, name)
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            files += 1
            sizes[classify(name)] += len(text.strip())
            hits += scan_text(os.path.relpath(path, directory), text, fixtures)
    return files, sizes, hits


def moto_messages(endpoint):
    """Every SQS message body and SNS notification moto has seen."""
    with urllib.request.urlopen(endpoint.rstrip("/") + "/moto-api/data.json", timeout=120) as r:
        data = json.load(r)
    sqs = [m.get("body") or "" for m in data.get("sqs", {}).get("Message", [])]
    sns = []
    for topic in data.get("sns", {}).get("Topic", []):
        for notification in topic.get("sent_notifications") or []:
            # (message id, message, subject, attributes, group id)
            sns.append("\n".join(str(part) for part in notification[1:3] if part))
    return sqs, sns


def self_test():
    """The detector on planted leaks and look-alikes, including every grouping
    in tests/fixtures/nhs_number_groupings.json (which the Rust detector is
    held to as well)."""
    with open(os.path.join(ROOT, "fixtures", "nhs_number_groupings.json"), encoding="utf-8") as f:
        groupings = json.load(f)
    fixtures = ["Philippa Fixturington", "2017-11-23"]
    must_hit = [
        '{"nhs_number":"9990000018"}',
        "child 999 000 0018 attended",
        "ref 999-000-0026",
        "nhs=9990000034,",
        '{"date_of_birth": "2017-01-01"}',
        "dob=2017-01-01",
        '"birthDate":"2017-01-01"',
        "DateOfBirth: 01/01/2017",
        "name philippa fixturington here",
        "born 2017-11-23",
        "GET /messageexchange/X26ABC2/inbox/9990000018 404",  # not a MESH id
        "inbox/AB9990000018CDEFABCDEFABCDEFABCD1 200",  # 33 hex digits: not one either
        "local_id=9990000018&id=AB9990000018CDEFABCDEFABCDEFABCD",
        # Not X-Ray ids: a 25-hex tail, a number beside a trace id, a Parent
        # of 17 hex, a number after Parent= that is not hex-shaped.
        '"xrayTraceId":"Root=1-6b0cc8ae-4b9990000018d9564fa404d8a;Parent=19b0e8965b16c00a"',
        "Root=1-6b0cc8ae-f1b7f915b58f1704688605c4 9990000018",
        "Parent=9990000018abcdef0",
        "Parent=9990000018;Sampled=1",
        "trace 21-6b0cc8ae-4b9990000018d9564fa404d8",
    ]
    must_pass = [
        "9990000010",  # fails Modulus 11
        "99900000180",  # eleven digits
        "+447700900123",
        "020 7946 0999",
        "1764059340123456789",  # nanoseconds
        "ref 0f6d1c2e-0000-4000-8000-999000001800",
        "ref 0f6d1c2e-0000-4000-8000-a9990000018b",  # a UUID's hex group
        "/records/0/date_of_birth",  # a pointer naming the refused field
        '"date_of_birth": null',
        "2026-11-25T08:31:02.123456Z",
        "GET /messageexchange/X26ABC2/inbox/AB9990000018CDEFABCDEFABCDEFABCD 200",  # a MESH id
        # X-Ray trace header ids whose hex holds a valid number (seen in CI)
        '"xrayTraceId":"Root=1-6b0cc8ae-4b9990000018d9564fa404d8;Parent=19b0e8965b16c00a;Sampled=1"',
        "Root=1-6b0cc8ae-f1b7f915b58f1704688605c4;Parent=9990000018abcdef;Self=1-6b0cc8ae-a9990000018bcdef01234567",
    ]
    failures = []
    for case in groupings["must_find"]:
        found = nhs_numbers(case["text"])
        if found != case["found"]:
            failures.append(f"grouping: {case['text']!r} gave {len(found)} numbers, wanted {case['found']!r}")
    for text in groupings["must_pass"]:
        if nhs_numbers(text):
            failures.append(f"grouping false hit: {text!r}")
    must_hit += [case["text"] for case in groupings["must_find"]]
    must_pass += groupings["must_pass"]
    for text in must_hit:
        if not scan_text("self-test", text, fixtures):
            failures.append(f"missed: {text}")
    for text in must_pass:
        if scan_text("self-test", text, fixtures):
            failures.append(f"false hit: {text}")
    if failures:
        print("privacy scan self-test FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"privacy scan self-test: {len(must_hit)} leaks caught, {len(must_pass)} non-leaks passed")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capture-dir")
    parser.add_argument("--moto", help="moto server URL (CPIS_MOTO_ENDPOINT)")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    if not args.capture_dir:
        parser.error("--capture-dir is required")

    fixtures = load_fixtures()
    files, sizes, hits = scan_capture_dir(args.capture_dir, fixtures)
    empty = [f"{kind} ({size:,} characters, at least {MINIMUM[kind]:,} expected)"
             for kind, size in sizes.items() if size < MINIMUM[kind]]
    sqs = sns = []
    if args.moto:
        sqs, sns = moto_messages(args.moto)
        for i, body in enumerate(sqs):
            hits += scan_text(f"moto sqs message {i}", body, fixtures)
        for i, body in enumerate(sns):
            hits += scan_text(f"moto sns notification {i}", body, fixtures)
        for kind, items in (("SQS messages", sqs), ("SNS notifications", sns)):
            if len(items) < MINIMUM[kind]:
                empty.append(f"{kind} ({len(items):,}, at least {MINIMUM[kind]:,} expected)")
    else:
        empty.append("SQS/SNS messages (no --moto)")

    print(f"privacy scan: {files} captured files "
          f"(logs {sizes['logs']:,} chars, error bodies {sizes['error bodies']:,}, "
          f"response headers {sizes['response headers']:,}, audit trail {sizes['audit trail']:,}, "
          f"messages {sizes['messages']:,}); moto: {len(sqs):,} SQS messages, "
          f"{len(sns):,} SNS notifications")
    status = 0
    if empty:
        print("privacy scan FAILED: (next to) nothing captured for: " + ", ".join(empty))
        status = 1
    if hits:
        print(f"privacy scan FAILED: {len(hits)} hits")
        for hit in hits[:200]:
            print("  " + hit)
        status = 1
    if status == 0:
        print("privacy scan: 0 hits")
    return status


if __name__ == "__main__":
    sys.exit(main())
