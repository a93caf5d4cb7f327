#!/usr/bin/env python3
"""The portal in a real browser (issue 14): the journeys of a duty team, a
clinician and a council administrator, and the denials, through the real
`cpis serve` binary, in Debian's Chromium driven by Playwright.

Every page visited is checked by axe-core (no violation of WCAG 2.0-2.2 A and
AA or of axe's best practices), for Content-Security-Policy reports in the
console, and saved as a screenshot. Each journey is done by keyboard alone
(Tab, Enter, Space, the arrow keys in a radio group, typing): `keys` below never clicks.

Usage: journeys.py --cpis BIN --axe AXE_MIN_JS --artifacts DIR [--capture DIR]

Synthetic NHS numbers only (the 999 range). The service's log and its SMS and
email outbox are copied to --capture (the privacy scan's directory); pages and
screenshots are not (they show the number to those entitled to it).
"""

import argparse
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright

CHILD_WITH_PLAN = "9990000018"
CHILD_WITHOUT_PLAN = "9990000026"
OTHER_CHILD = "9990000034"
COUNCIL = "E09000033"
OTHER_COUNCIL = "E06000001"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# axe-core's rule sets: every WCAG 2.0, 2.1 and 2.2 A and AA rule, and best practice.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


class Failure(Exception):
    pass


def expect(condition, what):
    if not condition:
        raise Failure(what)


class Service:
    """`cpis serve --demo` on a free loopback port (or `addr`) with a fresh data
    directory, and any `extra` options."""

    def __init__(self, cpis, work, addr="127.0.0.1:0", extra=()):
        self.cpis = cpis
        self.data = os.path.join(work, "data")
        self.log_path = os.path.join(work, "serve.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [cpis, "serve", "--demo", "--addr", addr, "--data", self.data, *extra],
            stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": "info"},
        )
        self.addr = self._wait_for_address()
        self.base = f"http://{self.addr}"

    def _wait_for_address(self):
        # The kernel chooses the port: the "cpis listening" line says which.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Failure("cpis serve stopped: " + open(self.log_path).read()[-2000:])
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if "cpis listening" in line:
                        return json.loads(line)["fields"]["addr"]
            time.sleep(0.1)
        raise Failure("cpis serve never said where it listens")

    def run(self, *args):
        out = subprocess.run([self.cpis, *args, "--data", self.data], capture_output=True,
                             text=True, check=False)
        expect(out.returncode == 0, f"cpis {args[0]} failed: {out.stderr}")
        return out.stdout.strip()

    def token(self, *caller):
        return self.run("token", *caller)

    def link(self, *caller, extra=()):
        return self.run("login-link", *caller, "--addr", self.addr, *extra)

    def api(self, method, path, token, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


COUNCIL_CALLER = ("--council", COUNCIL)
OTHER_COUNCIL_CALLER = ("--council", OTHER_COUNCIL)
CLINICIAN_CALLER = ("--clinician", "--ods", "RJ1", "--org-name", "St Example's Hospital",
                    "--rbac", "B0107", "--setting", "emergency-department", "--user", "dr-1")


class Browser:
    """One Chromium (a fresh profile), one page, and the checks every page gets."""

    shots = 0  # screenshots numbered across every profile, in journey order

    def __init__(self, playwright, axe_source, artifacts):
        self.profile = tempfile.mkdtemp(prefix="cpis-portal-chromium-")
        self.context = playwright.chromium.launch_persistent_context(
            self.profile, executable_path="/usr/bin/chromium", headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
        self.axe_source = axe_source
        self.artifacts = artifacts
        self.console = []
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))

    def fresh(self):
        """A new browser profile: nobody signed in."""
        self.close()
        self.__init__(self._playwright, self.axe_source, self.artifacts)

    def close(self):
        self.context.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def check_page(self, name):
        """axe-core on the page as it is, no CSP report, and a screenshot."""
        page = self.page
        page.wait_for_load_state("load")
        # Runtime.evaluate is not subject to the page's CSP, which stays on.
        page.evaluate(self.axe_source)
        result = page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
        violations = [f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes: "
                      f"{[n['target'] for n in v['nodes']][:3]})" for v in result["violations"]]
        expect(not violations, f"{name}: axe-core violations: {violations}")
        csp = [text for kind, text in self.console if "Content Security Policy" in text]
        expect(not csp, f"{name}: CSP reports: {csp}")
        errors = [text for kind, text in self.console if kind == "error"
                  and "404" not in text and "403" not in text and "400" not in text]
        expect(not errors, f"{name}: console errors: {errors}")
        self.console.clear()
        Browser.shots += 1
        path = os.path.join(self.artifacts, f"{self.shots:02d}-{name}.png")
        page.screenshot(path=path, full_page=True)
        print(f"  page ok: {name} ({page.url.split('?')[0]})")
        return path


def keys(page, target, action=None, text=None, limit=60):
    """Keyboard only: Tab until `target` (a CSS selector) has the focus, then
    type `text` and/or press `action` (Enter, Space). Fails if Tab never
    reaches it: an element the keyboard cannot reach is a failure here."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", target):
            break
        page.keyboard.press("Tab")
    else:
        raise Failure(f"Tab never reached {target} on {page.url}")
    if text is not None:
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.type(text)
    if action:
        page.keyboard.press(action)


def from_top(page):
    """Start tabbing from the top of the page."""
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")


def text_of(page):
    return page.inner_text("main")


def sms_links(service, deadline_s=30):
    """The links in the SMS messages the service wrote locally, once there is one."""
    path = os.path.join(service.data, "outbox", "messages.jsonl")
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                lines = [json.loads(line) for line in f if line.strip()]
            links = {link for line in lines if line["channel"] == "sms"
                     for link in re.findall(r"https?://\S+", line["text"])}
            if links:
                return sorted(links)
        time.sleep(0.1)
    raise Failure("no SMS was written to the local outbox")


def setup(service, council_token):
    """Last night's full snapshot from the council: one child with a plan, one
    record rejected (a start date in the future)."""
    tomorrow = (datetime.date.today() + datetime.timedelta(days=2)).isoformat()
    status, ack = service.api("POST", "/v1/uploads", council_token, {
        "sequence": 1, "mode": "full", "records": [
            {"nhs_number": CHILD_WITH_PLAN, "plan_type": "CPP", "start_date": "2025-09-01",
             "local_id": "CASE-42"},
            {"nhs_number": OTHER_CHILD, "plan_type": "LAC", "start_date": tomorrow,
             "local_id": "CASE-43"},
        ]})
    expect(status == 200 and ack["file_outcome"] == "CPF03", f"setup upload: {status} {ack}")


def journey_clinician(service, browser):
    print("journey 2: a clinician checks a child with a plan, then one without")
    page = browser.page
    page.goto(service.link(*CLINICIAN_CALLER))
    expect(page.url.endswith("/portal/check"), f"signed in to {page.url}")
    browser.check_page("check-form")
    # First without the unscheduled answer: the error summary.
    keys(page, "#nhs_number", text="999 000 0018")
    keys(page, "button.nhsuk-button", "Enter")
    page.wait_for_selector(".nhsuk-error-summary")
    expect("Select whether the child is here for unscheduled care" in text_of(page),
           "no error for the missing answer")
    browser.check_page("check-form-error")
    # The refusal never carries the NHS number: it is typed again.
    expect(page.input_value("#nhs_number") == "", "the NHS number is echoed in the refusal")
    from_top(page)
    keys(page, "#nhs_number", text="999 000 0018")
    keys(page, "#unscheduled", "Space")
    keys(page, "button.nhsuk-button", "Enter")
    page.wait_for_url(re.compile(r"/portal/check/results/"))
    expect(CHILD_WITH_PLAN not in page.url, "the NHS number is in the URL")
    body = text_of(page)
    expect("This child has child protection information" in body, "no flag shown")
    expect("Child Protection Plan" in body and "Example Borough Council" in body, "no plan")
    tel = page.eval_on_selector_all("a[href^='tel:']", "els => els.map(e => e.getAttribute('href'))")
    expect("tel:02079460000" in tel and "tel:02079460990" in tel, f"tel links {tel}")
    browser.check_page("check-result-plan")
    shots = {"check": browser.shots}
    keys(page, "a[href='/portal/check']:not(.nhsuk-header__navigation-link)", "Enter")
    page.wait_for_url(re.compile(r"/portal/check$"))
    keys(page, "#nhs_number", text=CHILD_WITHOUT_PLAN)
    # A radio group is one Tab stop; the arrow keys choose within it.
    keys(page, "#unscheduled")
    page.keyboard.press("ArrowDown")
    expect(page.is_checked("#unscheduled-no"), "the arrow key did not choose 'No'")
    keys(page, "button.nhsuk-button", "Enter")
    page.wait_for_url(re.compile(r"/portal/check/results/"))
    body = text_of(page)
    expect("No child protection information" in body, "no answer for a child without a plan")
    expect(not page.query_selector(".nhsuk-error-summary, .nhsuk-error-message"),
           "'no information' looks like an error")
    expect(not page.query_selector(".nhsuk-card"), "'no information' shows a plan card")
    browser.check_page("check-result-none")
    return shots


def journey_duty_team(service, browser, council_token):
    print("journey 1: the duty team follows the SMS link, signs in, reads and acknowledges")
    page = browser.page
    links = sms_links(service)
    expect(len(links) == 1 and "/portal/notifications/" in links[0], f"SMS links {links}")
    link = links[0]
    asn_id = link.rsplit("/", 1)[1]
    page.goto(link)
    expect("/portal/sign-in?next=" in page.url, f"the SMS link did not ask to sign in: {page.url}")
    browser.check_page("sign-in-from-sms")
    keys(page, "#ticket", text=service.link(*COUNCIL_CALLER), action="Enter")
    page.wait_for_url(re.compile(re.escape(f"/portal/notifications/{asn_id}") + "$"))
    body = text_of(page)
    expect("999 000 0018" in body and "CASE-42" in body, "the ASN lacks the child or the case")
    expect("St Example's Hospital" in body and "dr-1" in body and "emergency-department" in body,
           "the ASN lacks who or where")
    browser.check_page("notification")
    shots = {"notification": browser.shots}
    # A form posted without its CSRF token is refused and changes nothing.
    page.evaluate("() => document.querySelectorAll('main input[name=csrf]').forEach(e => e.remove())")
    keys(page, "#note", text="sent without its token")
    with page.expect_navigation() as refused:
        keys(page, "main button.nhsuk-button", "Enter")
    expect(refused.value.status == 403 and "this form could not be sent" in text_of(page),
           "a form without its CSRF token passed")
    browser.check_page("denied-csrf")
    status, asn = service.api("GET", f"/v1/notifications/{asn_id}", council_token)
    expect(status == 200 and not asn["acknowledged"], "the CSRF-less form acknowledged the ASN")
    page.goto(link)
    keys(page, "#note", text="Rang the ward at 02:40; duty social worker visiting.")
    keys(page, "main button.nhsuk-button", "Enter")
    page.wait_for_url(re.compile(r"acknowledged=1$"))
    expect("Notification acknowledged" in text_of(page), "no confirmation")
    browser.check_page("notification-acknowledged")
    status, asn = service.api("GET", f"/v1/notifications/{asn_id}", council_token)
    expect(status == 200 and asn["acknowledged"], f"the API does not show it acknowledged: {asn}")
    expect(asn.get("acknowledgement_note") == "Rang the ward at 02:40; duty social worker visiting.",
           "the note was not kept")
    from_top(page)
    keys(page, "a.nhsuk-header__navigation-link[href='/portal/notifications']", "Enter")
    page.wait_for_url(re.compile(r"/portal/notifications$"))
    expect(asn_id in text_of(page) and "Acknowledged" in text_of(page), "inbox")
    browser.check_page("inbox")
    return asn_id, shots


def journey_administrator(service, browser, council_token):
    print("journey 3: the administrator sees last night's rejected record, corrects the directory")
    page = browser.page
    page.goto(service.link(*COUNCIL_CALLER, extra=("--next", "/portal/uploads")))
    expect(page.url.endswith("/portal/uploads"), f"landed on {page.url}")
    body = text_of(page)
    expect("some records rejected (CPF03)" in body, "the upload's outcome is missing")
    expect("Record 2" in body and "START_DATE_IN_FUTURE" in body and "/records/1/start_date" in body,
           "the rejected record's detail and location are missing")
    expect("has stopped" not in body and "not sent a full snapshot" not in body,
           "a fresh feed shows the stale banner")
    browser.check_page("uploads")
    shots = {"uploads": browser.shots}
    from_top(page)
    keys(page, "a.nhsuk-header__navigation-link[href='/portal/authority']", "Enter")
    page.wait_for_url(re.compile(r"/portal/authority$"))
    browser.check_page("directory")
    keys(page, "#office_hours_phone", text="call us")
    keys(page, "#notify_sms", text="07700900123")
    keys(page, "main button.nhsuk-button", "Enter")
    page.wait_for_selector(".nhsuk-error-summary")
    body = text_of(page)
    expect("Enter the office hours phone number" in body and "SMS number 1 must start with +44" in body,
           "the validation errors are missing")
    expect(page.input_value("#office_hours_phone") == "call us", "what was sent is lost")
    browser.check_page("directory-error")
    # The summary links to the field, by keyboard.
    from_top(page)
    keys(page, ".nhsuk-error-summary a[href='#office_hours_phone']", "Enter")
    expect(page.evaluate("document.activeElement.id") == "office_hours_phone"
           or page.url.endswith("#office_hours_phone"), "the summary does not lead to the field")
    keys(page, "#office_hours_phone", text="020 7946 0001")
    keys(page, "#notify_sms", text="+447700900123")
    keys(page, "main button.nhsuk-button", "Enter")
    page.wait_for_url(re.compile(r"saved=1$"))
    expect("Directory entry saved" in text_of(page), "no confirmation")
    browser.check_page("directory-saved")
    status, entry = service.api("GET", "/v1/authority", council_token)
    expect(status == 200 and entry["office_hours_phone"] == "020 7946 0001"
           and entry["notify_sms"] == ["+447700900123"], f"the API shows {entry}")
    return shots


def journey_denials(service, browser, asn_id):
    print("journey 4: denials")
    page = browser.page
    # Another council: the ASN looks exactly like one that does not exist.
    page.goto(service.link(*OTHER_COUNCIL_CALLER))
    expect(page.url.endswith("/portal/notifications"), f"landed on {page.url}")
    uploads = page.goto(f"{service.base}/portal/uploads")
    expect("not sent a full snapshot" in text_of(page), "no stale-feed banner for a council without a feed")
    browser.check_page("uploads-stale-banner")
    theirs = page.goto(f"{service.base}/portal/notifications/{asn_id}")
    theirs_body = page.content()
    expect(theirs.status == 404 and "Page not found" in text_of(page), "another council's ASN shown")
    browser.check_page("denied-other-councils-asn")
    missing = page.goto(f"{service.base}/portal/notifications/00000000-0000-4000-8000-000000000000")
    expect(missing.status == 404 and page.content() == theirs_body,
           "another council's ASN does not look exactly like a missing one")
    # A council on the clinician's page.
    check = page.goto(f"{service.base}/portal/check")
    expect(check.status == 404 and page.content() == theirs_body, "a council reached the check page")
    browser.check_page("denied-council-on-check")
    # Sign out: the session is over.
    page.goto(f"{service.base}/portal/notifications")
    keys(page, "button.nhsuk-header__account-button", "Enter")
    page.wait_for_url(re.compile(r"signed_out=1$"))
    expect("You have signed out" in text_of(page), "no sign-out confirmation")
    browser.check_page("signed-out")
    page.goto(f"{service.base}/portal/notifications")
    expect("/portal/sign-in" in page.url, "a signed-out browser still reads the inbox")
    # A sign-in link used twice, and one expired (minted eleven minutes ago).
    link = service.link(*COUNCIL_CALLER)
    page.goto(link)
    expect(page.url.endswith("/portal/notifications"), "the first use failed")
    browser.fresh()
    page = browser.page
    reused = page.goto(link)
    expect(reused.status == 403 and "expired or has already been used" in text_of(page),
           "a reused link signed in")
    browser.check_page("denied-reused-link")
    earlier = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=11))
    expired_link = service.link(*COUNCIL_CALLER, extra=(
        "--issued-at", earlier.strftime("%Y-%m-%dT%H:%M:%SZ")))
    expired = page.goto(expired_link)
    expect(expired.status == 403 and "expired or has already been used" in text_of(page),
           "an expired link signed in")
    browser.check_page("denied-expired-link")
    page.goto(f"{service.base}/portal/notifications")
    expect("/portal/sign-in" in page.url, "a refused link left a session")
    # A ticket is no bearer token.
    status, _ = service.api("GET", "/v1/notifications", expired_link.split("ticket=")[1].split("&")[0])
    expect(status == 401, "a sign-in ticket opened the API")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpis", required=True)
    parser.add_argument("--axe", required=True)
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--docs", help="copy the three main screenshots here")
    parser.add_argument("--capture", default=os.environ.get("CPIS_PRIVACY_CAPTURE_DIR"))
    args = parser.parse_args()
    os.makedirs(args.artifacts, exist_ok=True)
    for old in os.listdir(args.artifacts):
        if old.endswith(".png"):
            os.remove(os.path.join(args.artifacts, old))
    axe_source = open(args.axe, encoding="utf-8").read()
    work = tempfile.mkdtemp(prefix="cpis-portal-")
    service = Service(args.cpis, work)
    failed = None
    try:
        council_token = service.token(*COUNCIL_CALLER)
        setup(service, council_token)
        with sync_playwright() as playwright:
            Browser._playwright = playwright
            browser = Browser(playwright, axe_source, args.artifacts)
            try:
                shots = journey_clinician(service, browser)
                browser.fresh()
                asn_id, more = journey_duty_team(service, browser, council_token)
                shots.update(more)
                browser.fresh()
                shots.update(journey_administrator(service, browser, council_token))
                browser.fresh()
                journey_denials(service, browser, asn_id)
            finally:
                browser.close()
        if args.docs:
            names = {"notification": "portal-notification.png", "check": "portal-check-result.png",
                     "uploads": "portal-uploads.png"}
            for key, name in names.items():
                shot = [f for f in sorted(os.listdir(args.artifacts)) if f.startswith(f"{shots[key]:02d}-")]
                shutil.copy(os.path.join(args.artifacts, shot[0]), os.path.join(args.docs, name))
    except Failure as failure:
        failed = str(failure)
    finally:
        service.stop()
        if args.capture:
            os.makedirs(args.capture, exist_ok=True)
            shutil.copy(service.log_path, os.path.join(args.capture, "portal-serve-logs.txt"))
            outbox = os.path.join(service.data, "outbox", "messages.jsonl")
            if os.path.exists(outbox):
                shutil.copy(outbox, os.path.join(args.capture, "portal-serve-outbox.jsonl"))
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        print(f"portal journeys: FAILED: {failed}", file=sys.stderr)
        return 1
    print(f"portal journeys: 4 passed, 0 failed ({len(os.listdir(args.artifacts))} screenshots "
          f"in {args.artifacts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
