#!/usr/bin/env python3
"""Validates every FHIR response of a running `cpis serve` against the FHIR R4B
models of the `fhir.resources` package (issue 9).

Starts the real binary on a free loopback port with a temporary data directory,
mints tokens with `cpis token`, uploads a plan, then exercises every FHIR route
and error. Usage: validate_fhir.py PATH_TO_CPIS_BINARY
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
CHILD = "9990000018"
UNKNOWN_CHILD = "9990000026"
FHIR_JSON = "application/fhir+json"

results = {"passed": 0, "failed": 0}


def check(name, condition, detail=""):
    if condition:
        results["passed"] += 1
        print(f"ok    {name}")
    else:
        results["failed"] += 1
        print(f"FAIL  {name} {detail}")


def request(base, method, path, token=None, headers=None, body=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("content-type", ""), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("content-type", ""), json.loads(err.read() or b"null")


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as data:
        def token(*args):
            return subprocess.run([binary, "token", "--data", data, *args], check=True, capture_output=True, text=True).stdout.strip()

        council = token("--council", "E09000033")
        doctor = token("--clinician", "--ods", "RJ1", "--org-name", "St Example's Hospital", "--rbac", "B0107",
                       "--setting", "emergency-department", "--user", "dr-1")
        server = subprocess.Popen([binary, "serve", "--demo", "--addr", "127.0.0.1:0", "--data", data],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        logs = []
        addr = None
        for line in server.stdout:
            logs.append(line)
            if "cpis listening" in line:
                addr = json.loads(line)["fields"]["addr"]
                break
        threading.Thread(target=lambda: logs.extend(server.stdout), daemon=True).start()
        base = f"http://{addr}"
        try:
            status, _, _ = request(base, "POST", "/v1/uploads", council, body={
                "sequence": 1, "mode": "delta",
                "records": [{"nhs_number": CHILD, "plan_type": "CPP", "start_date": "2025-09-01", "local_id": "CASE-42"}],
            })
            check("upload a plan", status == 200)
            ident = f"patient:identifier={NHS_SYSTEM}%7C{CHILD}"

            status, ctype, body = request(base, "GET", f"/FHIR/R4/CareTeam?{ident}", doctor, {"IsUnscheduledAccessEvent": "true"})
            check("CareTeam: 200 fhir+json", status == 200 and ctype.startswith(FHIR_JSON), f"{status} {ctype}")
            bundle = Bundle.model_validate(body)
            check("CareTeam: a valid R4B searchset Bundle with one CareTeam",
                  bundle.type == "searchset" and len(bundle.entry) == 1
                  and bundle.entry[0].resource.get_resource_type() == "CareTeam")
            team = bundle.entry[0].resource
            check("CareTeam: category, council, phones",
                  team.category[0].coding[0].code == "CPP"
                  and team.managingOrganization[0].identifier.value == "E09000033"
                  and len(team.telecom) == 2)

            status, ctype, body = request(base, "GET", f"/FHIR/R4/AuditEvent?{ident}", doctor)
            bundle = Bundle.model_validate(body)
            check("AuditEvent: the unscheduled access, valid R4B",
                  status == 200 and len(bundle.entry) == 1
                  and bundle.entry[0].resource.agent[0].who.identifier.value == "RJ1")

            status, ctype, body = request(base, "GET", f"/FHIR/R4/Flag?{ident}", doctor)
            bundle = Bundle.model_validate(body)
            check("Flag: one active flag, valid R4B", status == 200 and len(bundle.entry) == 1
                  and bundle.entry[0].resource.status == "active")

            status, _, inbox = request(base, "GET", "/v1/notifications", council)
            check("Flag and AuditEvent notified nobody: one ASN only", status == 200 and len(inbox["notifications"]) == 1)

            unknown = f"patient:identifier={NHS_SYSTEM}%7C{UNKNOWN_CHILD}"
            status, _, body = request(base, "GET", f"/FHIR/R4/CareTeam?{unknown}", doctor, {"IsUnscheduledAccessEvent": "true"})
            bundle = Bundle.model_validate(body)
            check("no match: an empty searchset Bundle", status == 200 and not bundle.entry and bundle.total == 0)

            status, ctype, body = request(base, "GET", "/FHIR/R4/metadata", doctor)
            cap = CapabilityStatement.model_validate(body)
            types = sorted(r.type for r in cap.rest[0].resource)
            check("metadata: a valid CapabilityStatement of exactly the interactions",
                  status == 200 and types == ["AuditEvent", "CareTeam", "Flag"])

            def outcome(name, path, token, headers, want_status, want_code):
                status, ctype, body = request(base, "GET", path, token, headers)
                ok = status == want_status and ctype.startswith(FHIR_JSON)
                try:
                    parsed = OperationOutcome.model_validate(body)
                    ok = ok and parsed.issue[0].details.coding[0].code == want_code
                except Exception as err:  # noqa: BLE001 - report any validation failure
                    ok = False
                    print(err)
                check(f"{name}: {want_status} {want_code} OperationOutcome", ok, f"{status} {body}")
                check(f"{name}: no NHS number in the error", CHILD not in json.dumps(body))

            bad = f"patient:identifier={NHS_SYSTEM}%7C9990000010"
            outcome("invalid NHS number", f"/FHIR/R4/CareTeam?{bad}", doctor, {"IsUnscheduledAccessEvent": "true"}, 400, "INVALID_SEARCH_DATA")
            outcome("wrong identifier system", f"/FHIR/R4/CareTeam?patient:identifier=https://example.org%7C{CHILD}", doctor,
                    {"IsUnscheduledAccessEvent": "true"}, 400, "INVALID_SEARCH_DATA")
            outcome("missing search parameter", "/FHIR/R4/AuditEvent", doctor, {}, 400, "INVALID_SEARCH_DATA")
            outcome("missing IsUnscheduledAccessEvent", f"/FHIR/R4/CareTeam?{ident}", doctor, {}, 400, "PRECONDITION_FAILED")
            outcome("invalid IsUnscheduledAccessEvent", f"/FHIR/R4/CareTeam?{ident}", doctor, {"IsUnscheduledAccessEvent": "maybe"}, 400, "PRECONDITION_FAILED")
            outcome("no token", f"/FHIR/R4/CareTeam?{ident}", None, {"IsUnscheduledAccessEvent": "true"}, 401, "ACCESS_DENIED")
            outcome("a council on a care-setting route", f"/FHIR/R4/Flag?{ident}", council, {}, 403, "ACCESS_DENIED")
        finally:
            server.terminate()
            server.wait(timeout=10)
        all_logs = "".join(logs)
        check("the query strings (with NHS numbers) never reached the logs", CHILD not in all_logs and UNKNOWN_CHILD not in all_logs)
    print(f"fhir: {results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
