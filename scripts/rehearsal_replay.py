#!/usr/bin/env python3
"""Replays the README's invokes against functions under `cargo lambda watch`
and checks each answer; called by scripts/aws-rehearsal.sh, which started
moto, created the template's resources and the watches.

Usage: rehearsal_replay.py ENDPOINT ENV_DIR WORK_DIR name=port ...

Prints one `ok STEP: ...` or `FAIL STEP: ...` line per step and exits 1 on
any FAIL. It never prints a response body, an event or a queue message: they
carry NHS numbers (synthetic, 999 range, but the rule has no exceptions).
Only status codes, problem codes, counts and ids are shown.

The MESH steps come last (the stack is synthesised with MESH on): the
operator links the council to its mailbox by invoking mesh-poll, the council
(NHS England's mesh-client, tests/mesh_council.py) sends an LA Upload file
that the scheduled poll takes in and acknowledges, and a check's ASN reaches
the council's mailbox as a file through the dispatcher.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import time

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from privacy_scan import nhs_numbers  # noqa: E402  (the privacy scan's own detector)

REGION = "eu-west-2"
COUNCIL = "E09000033"
# The second child of upload-council.json (a LAC ended a month before the
# fixture's day, still visible): its check raises a second ASN, so the
# normal batch holds more than one message.
SECOND_CHILD = "9990000026"

endpoint, env_dir, work = sys.argv[1:4]
ports = dict(a.split("=", 1) for a in sys.argv[4:])
failures = []


def env_of(function):
    with open(os.path.join(env_dir, f"{function}.env"), encoding="utf-8") as f:
        return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)


session = boto3.session.Session(
    aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
sqs = session.client("sqs", endpoint_url=endpoint)
sns = session.client("sns", endpoint_url=endpoint)


def report(step, ok, detail):
    print(f"{'ok' if ok else 'FAIL'} {step}: {detail}", flush=True)
    if not ok:
        failures.append(step)
    return ok


def load(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return json.load(f)


def fresh(event, now):
    """An API Gateway event dated now: request time, token times, and every
    date in the body moved by as many days as the fixture's own day is old,
    so that a plan active on the fixture's day is active today."""
    event = json.loads(json.dumps(event))
    ctx = event["requestContext"]
    fixture_day = datetime.datetime.fromtimestamp(ctx["timeEpoch"] / 1000, datetime.timezone.utc).date()
    shift = now.date() - fixture_day
    ctx["timeEpoch"] = int(now.timestamp() * 1000)
    ctx["time"] = now.strftime("%d/%b/%Y:%H:%M:%S +0000")
    claims = ctx.get("authorizer", {}).get("jwt", {}).get("claims", {})
    if "iat" in claims:
        claims["iat"] = str(int(now.timestamp()) - 60)
        claims["exp"] = str(int(now.timestamp()) + 3540)
    if event.get("body"):
        event["body"] = re.sub(
            r"\b(\d{4}-\d{2}-\d{2})\b",
            lambda m: (datetime.date.fromisoformat(m.group(1)) + shift).isoformat(),
            event["body"])
        event.setdefault("headers", {})["content-length"] = str(len(event["body"].encode()))
    return event


def invoke(function, event, name):
    """`cargo lambda invoke` as the README writes it; the answer as JSON, or None."""
    path = os.path.join(work, f"event-{name}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(event, f)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    try:
        done = subprocess.run(
            ["cargo", "lambda", "invoke", function, "--invoke-address", "127.0.0.1",
             "--invoke-port", ports[function], "--output-format", "json", "--data-file", path],
            capture_output=True, text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired:
        report(name, False, f"{function} did not answer within 300 s")
        return None
    if done.returncode != 0:
        # The error text may quote the function's answer: the exit status only.
        report(name, False, f"cargo lambda invoke {function} exited {done.returncode}")
        return None
    try:
        return json.loads(done.stdout)
    except ValueError:
        report(name, False, f"{function} answered something that is not JSON")
        return None


def http(function, event, name):
    """Status and parsed body of an API Gateway v2 answer."""
    answer = invoke(function, event, name)
    if answer is None:
        return None, None
    body = answer.get("body") or ""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return answer.get("statusCode"), parsed


def expect_status(name, status, body, want):
    if status == want:
        return True
    code = body.get("code") if isinstance(body, dict) else None
    return report(name, False, f"HTTP {status}, expected {want}" + (f" ({code})" if code else ""))


def drain(queue_url, want=None, wait=5):
    """Every message on a queue (moto delivers SNS to SQS synchronously, but a
    short poll keeps this honest on a slow machine)."""
    messages, deadline = [], time.time() + wait
    while time.time() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  AttributeNames=["All"]).get("Messages", [])
        messages += got
        if want is not None and len(messages) >= want and not got:
            break
    return messages


def sqs_event(messages, queue_arn):
    """The event the Lambda service builds from the queue's messages."""
    return {"Records": [{
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    } for m in messages]}


MESH_COUNCIL_MAILBOX = "X26ABC1"
MESH_FIXTURE = "crates/hl7v3/tests/fixtures/upload-000457.xml"


def council(*args):
    """The council's MESH client (tests/mesh_council.py, NHS England's
    mesh-client) against the rehearsal's sandbox: its exit status and the
    lines it printed (message ids, or the paths of the files it received)."""
    url = env_of("mesh-poll")["CPIS_MESH_URL"]
    done = subprocess.run(["python3", os.path.join(ROOT, "tests", "mesh_council.py"), *args, "--url", url],
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout.split()


def council_files(workflow, name):
    """What the council's mailbox holds of `workflow`: (body, Mex-* headers)
    per file, collected and acknowledged by the council."""
    rc, paths = council("receive", "--mailbox", MESH_COUNCIL_MAILBOX, "--workflow", workflow,
                        "--out", os.path.join(work, f"mesh-{name}"))
    if rc != 0:
        report(name, False, f"tests/mesh_council.py receive exited {rc}")
        return None
    files = []
    for path in paths:
        with open(path, encoding="utf-8") as f, open(path + ".json", encoding="utf-8") as h:
            files.append((f.read(), json.load(h)))
    return files


def mesh_steps(now, schedule, earlier_asn_ids):
    """The councils' HL7 v3 files over MESH (issue 13), on the stack's defaults."""
    poll_env = env_of("mesh-poll")
    upload_workflow = poll_env["CPIS_MESH_WORKFLOW_UPLOAD"]
    ack_workflow = poll_env["CPIS_MESH_WORKFLOW_ACK"]
    asn_workflow = env_of("notification-dispatch")["CPIS_MESH_WORKFLOW_ASN"]

    # 11. The operator links the council to its MESH mailbox (README, "MESH on AWS").
    answer = invoke("mesh-poll", {"action": "link", "council": COUNCIL, "mailbox": MESH_COUNCIL_MAILBOX},
                    "mesh-link")
    if answer is None or not report("mesh-link", answer.get("ok") is True and answer.get("mailbox") == MESH_COUNCIL_MAILBOX,
                                     f"{COUNCIL} linked to MESH mailbox {answer.get('mailbox')} by the operator's invocation"):
        return

    # 12. The council's case system sends its LA Upload file (file 000457: a CPP, an
    # ended LAC, an unborn child plan ending before it starts); the scheduled poll
    # applies it and acknowledges it to the sending mailbox: CPF03, one CPR07.
    path = os.path.join(work, "upload-000457.xml")
    with open(os.path.join(ROOT, MESH_FIXTURE), encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
        dst.write(src.read())
    rc, sent = council("send", "--mailbox", MESH_COUNCIL_MAILBOX, "--to", "X26ABC2", "--workflow",
                       upload_workflow, "--file", path)
    if rc != 0 or len(sent) != 1:
        report("mesh-upload", False, f"tests/mesh_council.py send exited {rc}")
        return
    answer = invoke("mesh-poll", schedule, "mesh-upload")
    acks = council_files(ack_workflow, "mesh-upload")
    if answer is not None and acks is not None:
        codes = [re.findall(r'code="(CPF0\d)"', body) for body, _ in acks]
        local_ids = [headers.get("mex-localid") for _, headers in acks]
        rejected = [body.count("CPR07") for body, _ in acks]
        report("mesh-upload", answer.get("ok") is True and answer.get("applied") == 1
               and answer.get("acknowledged") == 1 and codes == [["CPF03"]] and rejected == [1]
               and local_ids == [f"ACK_{sent[0]}"],
               f"poll applied {answer.get('applied')}, acknowledged {answer.get('acknowledged')}; "
               f"{len(acks)} acknowledgement in {MESH_COUNCIL_MAILBOX}, outcome {codes}, "
               f"{sum(rejected)} record rejected (CPR07), local id ACK_<message id>: {local_ids == [f'ACK_{sent[0]}']}")

    # 13. A clinician whose credential names an SDS job role checks the child: the
    # council gets the ASN as a file in its mailbox (MESH local id = the ASN id), and
    # its duty team the SMS and email, through the one dispatcher.
    check_event = fresh(load("events/apigw/check-clinician-b0107.json"), now)
    claims = check_event["requestContext"]["authorizer"]["jwt"]["claims"]
    claims.update({"sub": "dr-mesh-0002", "job_role": "R8000", "job_role_name": "Clinical Practitioner Access Role"})
    status, body = http("attendance-check", check_event, "mesh-asn-file")
    if status is None or not expect_status("mesh-asn-file", status, body, 200):
        return
    asn_queue = env_of("attendance-check")["CPIS_ASN_QUEUE_URL"]
    asn_queue_arn = sqs.get_queue_attributes(QueueUrl=asn_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # Only this check's ASN: the earlier ones, delivered already, may be back on
    # the queue once their visibility timeout has passed (nothing here deletes them).
    messages = [m for m in drain(asn_queue, want=1)
                if json.loads(m["Body"]).get("asn_id") not in earlier_asn_ids]
    asn_ids = [json.loads(m["Body"]).get("asn_id") for m in messages]
    answer = invoke("notification-dispatch", sqs_event(messages, asn_queue_arn), "mesh-asn-file")
    files = council_files(asn_workflow, "mesh-asn-file")
    if answer is not None and files is not None:
        local_ids = [headers.get("mex-localid") for _, headers in files]
        report("mesh-asn-file", len(messages) == 1 and failed_ids(answer) == [] and local_ids == asn_ids
               and all("<CP-ISAccessToServiceNotification" in body for body, _ in files),
               f"{len(messages)} ASN, {len(failed_ids(answer))} batchItemFailures, {len(files)} ASN file in "
               f"{MESH_COUNCIL_MAILBOX} named by its ASN id: {local_ids == asn_ids}")


def failed_ids(answer):
    return sorted(f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", []))


def main():
    now = datetime.datetime.now(datetime.timezone.utc)
    dispatch_env = env_of("notification-dispatch")
    check_env = env_of("attendance-check")
    asn_queue = check_env["CPIS_ASN_QUEUE_URL"]
    asn_queue_arn = sqs.get_queue_attributes(
        QueueUrl=asn_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    view_url = dispatch_env["CPIS_VIEW_URL"]

    # 1. The council's directory entry first, so the check's flag carries a
    # phone number and the ASN has channels (plan-upload creates the topic).
    status, body = http("plan-upload", fresh(load("events/apigw/update-authority-council.json"), now),
                        "directory")
    if status is not None and expect_status("directory", status, body, 200):
        report("directory", body.get("ods_code") == COUNCIL and bool(body.get("office_hours_phone")),
               f"PUT /v1/authority 200, {COUNCIL} with its duty phones")
    # A probe queue on the council's topic stands in for the duty team's phone.
    topic_arn = dispatch_env["CPIS_SNS_TOPIC_ARN_PREFIX"] + COUNCIL
    probe_url = sqs.create_queue(QueueName="cpis-rehearsal-duty-team-probe")["QueueUrl"]
    probe_arn = sqs.get_queue_attributes(QueueUrl=probe_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topics = [t["TopicArn"] for t in sns.list_topics().get("Topics", [])]
    if report("topic", topic_arn in topics, f"plan-upload created {topic_arn.rsplit(':', 1)[1]}"):
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=probe_arn,
                      Attributes={"RawMessageDelivery": "true"})

    # 2. The upload, dated relative to today: all three records stored.
    status, body = http("plan-upload", fresh(load("events/apigw/upload-council.json"), now), "upload")
    if status is not None and expect_status("upload", status, body, 200):
        # `loaded` counts a record accepted but not stored (an aged fixture's
        # EXPIRED_NOT_STORED), so each record's detail is read too.
        records = body.get("records", [])
        stored = [r for r in records if r.get("outcome") == "CPR06" and "detail" not in r]
        details = sorted({r["detail"] for r in records if "detail" in r})
        report("upload", body.get("file_outcome") == "CPF02" and len(records) == 3 and len(stored) == 3,
               f"POST /v1/uploads 200, outcome {body.get('file_outcome')}, {len(stored)} of 3 records stored"
               + (f" (others: {', '.join(details)})" if details else ""))
    status, body = http("plan-upload", fresh(load("events/apigw/list-plans-council.json"), now), "plans")
    if status is not None and expect_status("plans", status, body, 200):
        held = len(body.get("plans", []))
        report("plans", held == 3, f"GET /v1/plans 200, {held} plans held")

    # 3. The clinician's check: one plan, its council, a phone number to ring.
    check_event = load("events/apigw/check-clinician-b0107.json")
    status, body = http("attendance-check", fresh(check_event, now), "check")
    if status is not None and expect_status("check", status, body, 200):
        plans = body.get("plans", [])
        authority = plans[0].get("authority", {}) if plans else {}
        phones = [k for k in ("office_hours_phone", "emergency_duty_phone") if authority.get(k)]
        report("check", len(plans) == 1 and authority.get("ods_code") == COUNCIL and len(phones) == 2,
               f"POST /v1/checks 200, {len(plans)} plan, council {authority.get('ods_code')}, "
               f"{len(phones)} duty phone numbers")
    second = json.loads(json.dumps(check_event))
    second["body"] = json.dumps({**json.loads(second["body"]), "nhs_number": SECOND_CHILD})
    status, body = http("attendance-check", fresh(second, now), "check-second-child")
    if status is not None and expect_status("check-second-child", status, body, 200):
        plans = len(body.get("plans", []))
        report("check-second-child", plans == 1, f"POST /v1/checks 200, {plans} plan (an ended LAC, still visible)")

    # 4. A council token on the clinicians' route.
    status, body = http("attendance-check", fresh(load("events/apigw/check-council-forbidden.json"), now),
                        "check-forbidden")
    if status is not None and expect_status("check-forbidden", status, body, 403):
        report("check-forbidden", (body or {}).get("code") == "ACCESS_DENIED",
               f"POST /v1/checks as a council 403 {(body or {}).get('code')}")

    # 5. The council reads the child's history: the clinician's check is in it.
    status, body = http("history-query", fresh(load("events/apigw/history-council.json"), now), "history")
    if status is not None and expect_status("history", status, body, 200):
        seen = [(a.get("organisation_ods"), a.get("setting")) for a in body.get("access_history", [])]
        report("history", seen == [("RJ1", "emergency-department")],
               f"POST /v1/history 200, {len(seen)} access listed (the hospital's check: 1 from RJ1's emergency department)")

    # 6. The ASN queue holds exactly the two checks' ASN ids, and nothing else.
    messages = drain(asn_queue, want=2)
    leaks = sum(len(nhs_numbers(m["Body"])) for m in messages)
    report("asn-queue", len(messages) == 2 and leaks == 0,
           f"{len(messages)} ASN messages on the queue (2 expected), {leaks} NHS numbers in them")
    asn_ids = sorted(json.loads(m["Body"]).get("asn_id", "?") for m in messages)

    # 7. The normal batch, from those real messages: no failures, one notice per
    # ASN on the council's topic, each naming its ASN and nothing identifying.
    if messages:
        answer = invoke("notification-dispatch", sqs_event(messages, asn_queue_arn), "normal-batch")
        if answer is not None:
            notices = [m["Body"] for m in drain(probe_url, want=len(messages))]
            named = sorted(a for a in asn_ids if any(a in n for n in notices))
            clean = all(not nhs_numbers(n) and view_url in n for n in notices)
            report("normal-batch", failed_ids(answer) == [] and len(notices) == len(messages)
                   and named == asn_ids and clean,
                   f"{len(messages)} messages, {len(failed_ids(answer))} batchItemFailures, "
                   f"{len(notices)} notices on the council's topic, each with its ASN id and the sign-in link, no NHS number")

        # 8. SQS delivers at least once: the same batch again publishes nothing.
        answer = invoke("notification-dispatch", sqs_event(messages, asn_queue_arn), "duplicate-delivery")
        if answer is not None:
            again = drain(probe_url, wait=2)
            report("duplicate-delivery", failed_ids(answer) == [] and not again,
                   f"the batch again: {len(failed_ids(answer))} batchItemFailures, {len(again)} further notices")

        # 9. The README's poison message, between the two real ASNs: it fails alone.
        poison = load("events/sqs/poison-message.json")
        records = poison["Records"]
        for record, message in zip((records[0], records[2]), messages):
            record["body"] = message["Body"]
        poison_id = records[1]["messageId"]
        answer = invoke("notification-dispatch", poison, "poison-message")
        if answer is not None:
            report("poison-message", failed_ids(answer) == [poison_id],
                   f"batchItemFailures {failed_ids(answer)} (the poison message {poison_id} alone)")
    else:
        report("normal-batch", False, "no ASN messages to build a batch from")

    # 10. The relay's minute sweep, as EventBridge sends it: nothing to
    # re-queue, no stale feed (the council has sent no full snapshot: not
    # tracked on DynamoDB), and its StaleFeeds metric line written to stdout
    # whatever the log level.
    schedule = {
        "version": "0", "id": "cpis-rehearsal-sweep", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION, "resources": ["arn:aws:events:eu-west-2:123456789012:rule/cpis-relay"],
        "detail": {},
    }
    answer = invoke("outbox-relay", schedule, "relay-sweep")
    if answer is not None:
        log = os.path.join(work, "watch-outbox-relay.log")
        metric = False
        for _ in range(20):
            with open(log, encoding="utf-8", errors="replace") as f:
                metric = any('"StaleFeeds"' in line and '"CloudWatchMetrics"' in line for line in f)
            if metric:
                break
            time.sleep(0.1)
        report("relay-sweep", answer == {"relayed": 0, "stale_feeds": 0} and metric,
               f"relayed {answer.get('relayed')}, stale feeds {answer.get('stale_feeds')}, "
               f"StaleFeeds metric line {'written' if metric else 'missing'}")
    # The daily purge: every plan is still visible, so nothing may go.
    answer = invoke("outbox-relay", {"task": "purge"}, "relay-purge")
    if answer is not None:
        purged = {k: answer.get(k) for k in ("plans", "accesses", "notifications", "receipts")}
        report("relay-purge", purged == {"plans": 0, "accesses": 0, "notifications": 0, "receipts": 0},
               f"purged {purged}")
    status, body = http("plan-upload", fresh(load("events/apigw/list-plans-council.json"), now), "plans-after-purge")
    if status is not None and expect_status("plans-after-purge", status, body, 200):
        held = len(body.get("plans", []))
        report("plans-after-purge", held == 3, f"GET /v1/plans 200, {held} plans held")

    mesh_steps(now, schedule, asn_ids)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
