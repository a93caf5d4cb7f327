#!/usr/bin/env bash
# Smoke test after a deploy (issue 15), against the API Gateway URL or a
# `cpis serve`:
#
#   scripts/smoke.sh URL COUNCIL_TOKEN CLINICIAN_TOKEN
#
# Walks the service end to end with one synthetic child: health, a delta
# upload, an unscheduled check that shows the plan, the council's ASN read and
# acknowledged, the access history, a withdrawal and a check that no longer
# shows it; then says what the run left behind. One line per step, `ok <step>`
# or `FAIL <step>: <reason>`; exits non-zero at the first failure (after
# withdrawing the synthetic record if it had been loaded).
#
# Use a council identity kept for smoke tests, never a live council's: the
# run moves that council's upload sequence to the current time in
# milliseconds (see below), raises an ASN that goes to its duty-team channels,
# and leaves audit events under its name. The clinician token must be B0107
# (unscheduled checks by a B0170 or system token raise no ASN).
#
# Privacy: the synthetic NHS number (999 range) is never printed, put on a
# command line or in a URL; no token or response body is printed either, only
# status codes, problem codes and details (which the service guarantees carry
# no NHS number; ten-digit runs are masked all the same).
#
# Needs curl and python3 (standard library only).
set -euo pipefail

if [[ $# -ne 3 ]]; then
    echo "usage: scripts/smoke.sh URL COUNCIL_TOKEN CLINICIAN_TOKEN" >&2
    exit 2
fi
api=${1%/}

# Everything written here (tokens, bodies naming the synthetic child) is
# owner-only and removed on exit.
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SMOKE_WORK=$work

# ok STEP [DETAIL]
ok() { echo "ok $1${2:+: $2}"; }

fail() {
    echo "FAIL $1: $2"
    cleanup_record
    exit 1
}

# A bearer token is base64url segments joined by dots: anything else (a line
# break above all) could smuggle headers into the request.
for slot in council:"$2" clinician:"$3"; do
    who=${slot%%:*}
    token=${slot#*:}
    if [[ ! $token =~ ^[A-Za-z0-9._~+/=-]+$ ]]; then
        echo "FAIL arguments: the $who token is empty or not a bearer token"
        exit 1
    fi
    # Headers from a file, so that no token appears on curl's command line.
    printf 'Authorization: Bearer %s\n' "$token" >"$work/$who.header"
done

# JSON in and out with python3 (standard library): building bodies that name
# the synthetic child, and judging answers without printing them.
cat >"$work/judge.py" <<'PY'
import datetime, json, os, re, sys, time

work = os.environ["SMOKE_WORK"]


def mask(text):
    """Ten digits in a row (or 3-3-4) could be an NHS number: never printed."""
    return re.sub(r"(?<![0-9])[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}(?![0-9])", "<masked>", str(text))


def body():
    try:
        with open(os.path.join(work, "body"), encoding="utf-8") as f:
            answer = json.load(f)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        done("the answer is not the JSON object expected", False)
    return answer


def headers():
    found = {}
    try:
        with open(os.path.join(work, "headers"), encoding="latin-1") as f:
            for line in f:
                name, sep, value = line.partition(":")
                if sep:
                    found[name.strip().lower()] = value.strip()
    except FileNotFoundError:
        pass
    return found


def done(message, good=True):
    print(message)
    sys.exit(0 if good else 1)


def instant(text):
    """RFC 3339 UTC to (seconds, nanoseconds): stores may differ in the digits
    of the fraction they keep."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(?:Z|\+00:00)", text or "")
    if not match:
        return None
    whole = datetime.datetime.fromisoformat(match.group(1)).replace(tzinfo=datetime.timezone.utc)
    return int(whole.timestamp()), int((match.group(2) or "0").ljust(9, "0")[:9])


def synthetic():
    """A 999-range NHS number, never a real person's, and a new child every
    run: the service collapses a repeat check by the same user of the same
    child within 24 hours (no new ASN), so a fixed number would fail a second
    run that day. 9997 + the time in seconds modulo 10^5 repeats after 27
    hours; the test fixtures use 99900 and 99999 only."""
    base = 9997_00000 + int(time.time()) % 100_000
    while True:
        digits = f"{base:09d}"
        check = (11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1))) % 11) % 11
        if check != 10:  # 10 is never a valid check digit
            return digits + str(check)
        base += 1


command = sys.argv[1]
nhs = os.environ.get("SMOKE_NHS", "")
start = os.environ.get("SMOKE_START", "")

if command == "setup":
    # Yesterday in UTC: never after the UK civil date the service checks
    # start dates against, whatever the time of day.
    yesterday = datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=1)
    print(synthetic(), yesterday.isoformat())

elif command == "sequence":
    # The council's sequence must rise, and the API does not say where it is:
    # the time in milliseconds rises from run to run and stays far below
    # 2^53 - 1. Milliseconds, not seconds: two uploads in the same second
    # still differ, and 13 digits never read as an NHS number.
    after = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    print(max(time.time_ns() // 1_000_000, after + 1))

elif command == "upload-body":
    key = {"nhs_number": nhs, "plan_type": "CPP", "start_date": start}
    batch = {"sequence": int(sys.argv[2]), "mode": "delta"}
    if sys.argv[3] == "load":
        batch["records"] = [dict(key, local_id="CPIS-SMOKE-TEST")]
    else:
        batch["withdrawals"] = [key]
    print(json.dumps(batch))

elif command == "nhs-body":
    extra = {"unscheduled": True} if sys.argv[2:] == ["check"] else {}
    print(json.dumps(dict({"nhs_number": nhs}, **extra)))

elif command == "why":
    # The reason for a failed call: status, problem code and detail, request id.
    status, hint = sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 else "")
    found = headers()
    if status == "000":
        try:
            with open(os.path.join(work, "curl-error"), encoding="utf-8") as f:
                error = f.read().strip().splitlines()[-1]
        except (FileNotFoundError, IndexError):
            error = "no answer"
        done(mask(error))
    parts = [f"HTTP {status}"]
    try:
        with open(os.path.join(work, "body"), encoding="utf-8") as f:
            answer = json.load(f)
    except (OSError, ValueError):
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("code"), str):
        parts.append(mask(answer["code"]))
        if isinstance(answer.get("detail"), str):
            parts.append(mask(answer["detail"]))
    elif isinstance(answer, dict) and isinstance(answer.get("message"), str):
        parts.append(mask(answer["message"][:200]))  # API Gateway's own errors
    if "retry-after" in found:
        parts.append(f"retry after {mask(found['retry-after'])} s")
    request_id = found.get("x-request-id") or found.get("apigw-requestid")
    if request_id:
        parts.append(f"request id {mask(request_id)}")
    if hint:
        parts.append(hint)
    done(": ".join(parts[:2]) + "".join(f"; {p}" for p in parts[2:]))

elif command == "health":
    answer = body()
    if answer.get("status") != "ok":
        done(f"status is {mask(answer.get('status'))!r}, not 'ok'", False)
    done("")

elif command == "ready":
    answer = body()
    components = answer.get("components") or {}
    failing = sorted(name for name, c in components.items() if (c or {}).get("status") != "ok")
    if answer.get("status") == "ready" and not failing:
        done(f"{', '.join(sorted(components))} ok" if components else "")
    done(f"not ready; failing: {', '.join(mask(n) for n in failing) or 'none named'}", False)

elif command == "loaded":
    answer = body()
    outcomes = [r.get("outcome") for r in answer.get("records", [])]
    if answer.get("file_outcome") == "CPF02" and answer.get("loaded") == 1 and outcomes == ["CPR06"]:
        detail = [r.get("detail") for r in answer["records"] if r.get("detail")]
        if detail:  # e.g. EXPIRED_NOT_STORED: acknowledged but not stored
            done(f"acknowledged but not stored ({mask(detail[0])})", False)
        done(f"the synthetic record loaded (delta, sequence {answer.get('sequence')})")
    codes = [r.get("detail") for r in answer.get("records", []) if r.get("detail")]
    done(f"{mask(answer.get('file_outcome'))}, loaded {answer.get('loaded')}, "
         f"rejected {answer.get('rejected')} {mask(codes)}", False)

elif command == "withdrawn":
    answer = body()
    outcomes = [r.get("outcome") for r in answer.get("withdrawals", [])]
    if answer.get("withdrawn") == 1 and outcomes == ["CPR06"]:
        done(f"the synthetic record withdrawn (delta, sequence {answer.get('sequence')})")
    codes = [r.get("detail") for r in answer.get("withdrawals", []) if r.get("detail")]
    done(f"{mask(answer.get('file_outcome'))}, withdrawn {answer.get('withdrawn')} {mask(codes)}", False)

elif command == "plan-shown":
    answer = body()
    plans = answer.get("plans") or []
    ours = [p for p in plans if p.get("plan_type") == "CPP" and p.get("start_date") == start]
    if not ours:
        done(f"the check shows {len(plans)} plan(s), not the synthetic record's CPP", False)
    accesses = [a.get("accessed_at") for a in answer.get("access_history") or []]
    if not accesses:
        done("the check recorded no access (is the clinician token B0107?)", False)
    # The newest access is this check's: the ASN must carry the same instant.
    newest = max(accesses, key=lambda a: instant(a) or (0, 0))
    with open(os.path.join(work, "accessed_at"), "w", encoding="utf-8") as f:
        f.write(newest)
    council = (ours[0].get("authority") or {}).get("ods_code", "?")
    phones = sum(1 for k in ("office_hours_phone", "emergency_duty_phone")
                 if (ours[0].get("authority") or {}).get(k))
    done(f"the plan is shown (CPP, council {mask(council)}, {phones} phone number(s) to ring)")

elif command == "find-asn":
    with open(os.path.join(work, "accessed_at"), encoding="utf-8") as f:
        accessed_at = instant(f.read().strip())
    answer = body()
    ours = [n for n in answer.get("notifications") or []
            if n.get("nhs_number") == nhs and instant(n.get("accessed_at")) == accessed_at]
    if not ours:
        done("", False)
    asn = ours[0]  # newest first
    if not re.fullmatch(r"[0-9A-Za-z-]{1,64}", str(asn.get("id", ""))):
        done("", False)
    done(asn["id"])

elif command == "asn":
    # One ASN read in full (or acknowledged): it must be the one found.
    answer = body()
    want_ack = sys.argv[3] == "acknowledged"
    if answer.get("id") != sys.argv[2] or answer.get("nhs_number") != nhs:
        done("the answer is not the smoke check's ASN", False)
    if bool(answer.get("acknowledged")) != want_ack:
        done(f"acknowledged is {answer.get('acknowledged')!r}, expected {want_ack}", False)
    if want_ack and not answer.get("acknowledged_at"):
        done("acknowledged without acknowledged_at", False)
    done(f"ASN {answer['id']}")

elif command == "history":
    with open(os.path.join(work, "accessed_at"), encoding="utf-8") as f:
        accessed_at = instant(f.read().strip())
    accesses = body().get("access_history") or []
    if not any(instant(a.get("accessed_at")) == accessed_at for a in accesses):
        done(f"{len(accesses)} access(es), not the smoke check's", False)
    done(f"{len(accesses)} access(es), the smoke check's among them")

elif command == "no-plan":
    plans = body().get("plans") or []
    if plans:
        done(f"the check still shows {len(plans)} plan(s) after the withdrawal", False)
    done("no plan shown")

else:
    sys.exit(f"unknown command {command}")
PY
json() { python3 "$work/judge.py" "$@"; }

# call METHOD PATH WHO [BODY_FILE]: the status in $status, the answer in
# $work/body and $work/headers. No --fail(-with-body): every status is judged
# here, and an HTTP error must not end the script through `set -e` before its
# reason is printed. 000 means no answer (curl's message in curl-error).
call() {
    local method=$1 path=$2 who=$3 data=${4:-}
    local args=(--silent --show-error --max-time 30 --connect-timeout 10
        --request "$method" --output "$work/body" --dump-header "$work/headers"
        --write-out '%{http_code}')
    if [[ $who != anyone ]]; then
        args+=(--header "@$work/$who.header")
    fi
    if [[ -n $data ]]; then
        args+=(--header 'Content-Type: application/json' --data-binary "@$data")
    fi
    rm -f "$work/body" "$work/headers"
    : >"$work/body"
    status=$(curl "${args[@]}" "$api$path" 2>"$work/curl-error") || status=000
    calls+=("$method $path")
}
calls=()
why() { json why "$status" "${1:-}"; }

# Withdraws the synthetic record after a failure that left it loaded, so that
# no run leaves a flag behind; reports either way.
loaded=0
cleanup_record() {
    if [[ $loaded -ne 1 ]]; then
        return 0
    fi
    loaded=0
    json upload-body "$(json sequence "${sequence:-0}")" withdraw >"$work/cleanup.json"
    call POST /v1/uploads council "$work/cleanup.json"
    if [[ $status == 200 ]] && json withdrawn >/dev/null; then
        echo "ok cleanup: the synthetic record withdrawn after the failure"
    else
        echo "FAIL cleanup: the synthetic record is still loaded ($(why)); the council finds it in GET /v1/plans by its local_id CPIS-SMOKE-TEST and withdraws it"
    fi
}

# Interrupted after the upload: still withdraw the synthetic record.
trap 'echo; fail interrupted "stopped by a signal"' HUP INT TERM

# Upload answers that are not 200: the sequence conflict gets its way out.
upload_failed() {
    local step=$1
    if [[ $status == 409 ]] && grep -q '"SEQUENCE_CONFLICT"' "$work/body"; then
        fail "$step" "$(why "the council's upload sequence is ahead of this one (the time in milliseconds); if it was set wrong, the council rewinds it to its last good sequence n with POST /v1/uploads/rewind {\"sequence\": n} (README, decisions table), then runs this again; never rewind a live council's feed for a smoke test")"
    fi
    fail "$step" "$(why)"
}

# 1. Liveness, then readiness where it exists (cpis serve only: API Gateway
# routes /health alone, so anything else answers 404 there).
call GET /health anyone
if [[ $status != 200 ]]; then
    fail health "$(why)"
fi
if ! reason=$(json health); then fail health "$reason"; fi
ok health

call GET /health/ready anyone
case $status in
    200 | 503)
        if reason=$(json ready); then ok ready "$reason"; else fail ready "$reason"; fi
        ;;
    404) ok ready "not served at this URL (HTTP 404; only cpis serve has /health/ready)" ;;
    *) fail ready "$(why)" ;;
esac

read -r SMOKE_NHS SMOKE_START <<<"$(json setup)"
export SMOKE_NHS SMOKE_START
if [[ ! $SMOKE_NHS =~ ^999[0-9]{7}$ || -z $SMOKE_START ]]; then
    fail setup "could not make the synthetic record (python3?)"
fi

# 2. The synthetic record, as a delta upload.
sequence=$(json sequence)
json upload-body "$sequence" load >"$work/upload.json"
call POST /v1/uploads council "$work/upload.json"
if [[ $status != 200 ]]; then upload_failed upload; fi
if ! reason=$(json loaded); then fail upload "$reason"; fi
loaded=1
ok upload "$reason"

# 3. The clinician's unscheduled check shows the plan.
json nhs-body check >"$work/check.json"
call POST /v1/checks clinician "$work/check.json"
if [[ $status != 200 ]]; then fail check "$(why)"; fi
if ! reason=$(json plan-shown); then fail check "$reason"; fi
ok check "$reason"

# 4. The council's ASN for that check: written as the check is recorded, so
# it is normally there at once; a few seconds' grace for a slow store.
asn=""
for attempt in $(seq 1 20); do
    call GET '/v1/notifications?limit=100' council
    if [[ $status != 200 ]]; then fail notification "$(why)"; fi
    if asn=$(json find-asn); then break; fi
    asn=""
    sleep 1
done
if [[ -z $asn ]]; then
    fail notification "no ASN for the smoke check in the council's inbox after ${attempt} reads (is the check's clinician token B0107, and the council the one holding the plan?)"
fi
call GET "/v1/notifications/$asn" council
if [[ $status != 200 ]]; then fail notification "$(why)"; fi
if ! reason=$(json asn "$asn" unacknowledged); then fail notification "$reason"; fi
ok notification "$reason, read in full"

call POST "/v1/notifications/$asn/ack" council
if [[ $status != 200 ]]; then fail ack "$(why)"; fi
if ! reason=$(json asn "$asn" acknowledged); then fail ack "$reason"; fi
ok ack "$reason acknowledged"

# 5. The child's access history, as the council holding the plan.
json nhs-body >"$work/history.json"
call POST /v1/history council "$work/history.json"
if [[ $status != 200 ]]; then fail history "$(why)"; fi
if ! reason=$(json history); then fail history "$reason"; fi
ok history "$reason"

# 6. Withdraw the plan; a second check must no longer show it.
sequence=$(json sequence "$sequence")
json upload-body "$sequence" withdraw >"$work/withdraw.json"
call POST /v1/uploads council "$work/withdraw.json"
if [[ $status != 200 ]]; then upload_failed withdraw; fi
if ! reason=$(json withdrawn); then fail withdraw "$reason"; fi
loaded=0
ok withdraw "$reason"

call POST /v1/checks clinician "$work/check.json"
if [[ $status != 200 ]]; then fail recheck "$(why)"; fi
if ! reason=$(json no-plan); then fail recheck "$reason"; fi
ok recheck "$reason"

# 7. What the run leaves behind (README: decisions table, "On AWS" purge).
count() {
    local pattern=$1 n=0 c
    for c in "${calls[@]}"; do
        if [[ $c == $pattern ]]; then n=$((n + 1)); fi
    done
    echo "$n"
}
ok done "the run left behind, each until its rule removes it:"
echo "  audit events (append-only, no purge rule removes them; the child as a pseudonym):" \
    "$(count 'POST /v1/uploads') Upload, $(count 'POST /v1/checks') Check," \
    "$(count 'GET /v1/notifications[?]*') ListNotifications, $(count 'GET /v1/notifications/*') ReadNotification," \
    "$(count 'POST /v1/notifications/*/ack') AcknowledgeNotification, $(count 'POST /v1/history') ReadHistory," \
    "and DeliverNotification once the dispatcher delivers the ASN; /health is not audited"
echo "  the ASN $asn, acknowledged: purged 30 days after the access (ASN retention)"
echo "  the synthetic record's access history and check receipts: the record has no plan left," \
    "so the next daily purge removes them"
echo "  the duty-team SMS and email for the ASN, if the council has channels (an opaque reference, no NHS number)"
echo "  the council's upload sequence, now $sequence: its next upload must be above it"
