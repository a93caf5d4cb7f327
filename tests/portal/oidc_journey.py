#!/usr/bin/env python3
"""Production sign-in in a real browser (issue 14): the portal signs people in
through a real OpenID provider (`oidc-provider` from npm, tests/oidc/provider.mjs)
with the authorization code flow and PKCE, through the real `cpis serve`.

The provider is reached as `localhost` and the portal as `127.0.0.1`: two
sites, so the browser treats the provider's redirect back as the cross-site
navigation it is in production (the binding cookie must be Lax, the session
cookie Strict must still reach the page named by `next`).

1. A clinician signs in through the provider and checks a child with a plan,
   which sends the council an SMS.
2. The duty team follows the SMS link, signs in through the provider and lands
   on that ASN's page (the link's target survived the round trip).
3. Denials: the callback replayed; a callback finished in another browser (login
   CSRF); an account whose claims make no caller; state made up.

Every portal page on the way is checked by axe-core and saved as a screenshot;
the provider's own pages are driven by keyboard too, but not checked (they are
the provider's). Usage: oidc_journey.py --cpis BIN --provider DIR --axe AXE
--artifacts DIR (DIR holds provider.mjs and its node_modules).
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import http.cookiejar
import urllib.parse
import urllib.request

from playwright.sync_api import sync_playwright

from journeys import (CHILD_WITH_PLAN, COUNCIL_CALLER, Browser, Failure, Service, expect,
                      from_top, keys, setup, sms_links, text_of)

REFUSED = "Sign-in did not complete"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OpenIdProvider:
    """tests/oidc/provider.mjs on 127.0.0.1, its issuer named `localhost`."""

    def __init__(self, directory, work, redirect_uri):
        self.port = free_port()
        self.issuer = f"http://localhost:{self.port}"
        self.secret_file = os.path.join(work, "client-secret")
        with open(self.secret_file, "w") as f:
            f.write(os.urandom(24).hex() + "\n")
        os.chmod(self.secret_file, 0o600)
        self.log_path = os.path.join(work, "provider.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            ["node", os.path.join(directory, "provider.mjs"), "--port", str(self.port),
             "--issuer", self.issuer, "--redirect-uri", redirect_uri,
             "--secret-file", self.secret_file],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=directory)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Failure("the OpenID provider stopped: " + open(self.log_path).read()[-2000:])
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                if any(line.startswith('{"ready"') for line in f):
                    return
            time.sleep(0.1)
        raise Failure("the OpenID provider never said it was ready")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


def through_provider(browser, login):
    """On the provider's pages: sign in as `login` and consent, by keyboard.
    Returns when the browser has left the provider."""
    page = browser.page
    page.wait_for_url(re.compile(r"^http://localhost:\d+/interaction/"))
    keys(page, "input[name=login]", text=login)
    keys(page, "input[name=password]", text="any password")
    keys(page, "button[type=submit]", "Enter")
    page.wait_for_url(re.compile(r"^http://localhost:\d+/interaction/"))
    page.wait_for_selector("button[type=submit]")
    keys(page, "button[type=submit]", "Enter")
    page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/portal/"))
    # The provider's pages are not ours: what they logged is not checked.
    browser.console.clear()


def sign_in_button(browser, name):
    """The sign-in page (checked), then its OpenID Connect button."""
    page = browser.page
    expect("/portal/sign-in" in page.url, f"not asked to sign in: {page.url}")
    expect(page.query_selector("#oidc") is not None, "the sign-in page offers no provider")
    browser.check_page(name)
    from_top(page)
    keys(page, "#oidc", "Enter")


def journey_clinician(service, browser):
    print("journey A: a clinician signs in through the provider and checks a child")
    page = browser.page
    page.goto(f"{service.base}/portal/check")
    sign_in_button(browser, "oidc-sign-in")
    through_provider(browser, "dr-1")
    page.wait_for_url(re.compile(r"/portal/check$"))
    expect("St Example's Hospital" in page.inner_text("header"), "not signed in as the clinician")
    browser.check_page("oidc-clinician-check")
    keys(page, "#nhs_number", text=CHILD_WITH_PLAN)
    keys(page, "#unscheduled", "Space")
    keys(page, "button.nhsuk-button", "Enter")
    page.wait_for_url(re.compile(r"/portal/check/results/"))
    expect("This child has child protection information" in text_of(page), "no plan shown")
    browser.check_page("oidc-clinician-result")


def journey_duty_team(service, browser):
    print("journey B: the duty team follows the SMS link through the provider to the ASN")
    page = browser.page
    links = sms_links(service)
    expect(len(links) == 1 and "/portal/notifications/" in links[0], f"SMS links {links}")
    asn_id = links[0].rsplit("/", 1)[1]
    callbacks = []
    page.on("request", lambda r: callbacks.append(r.url) if "/portal/sign-in/callback" in r.url else None)
    page.goto(links[0])
    expect("next=%2Fportal%2Fnotifications%2F" in page.url, f"the target was dropped: {page.url}")
    sign_in_button(browser, "oidc-sign-in-from-sms")
    through_provider(browser, "duty-1")
    page.wait_for_url(re.compile(re.escape(f"/portal/notifications/{asn_id}") + "$"))
    body = text_of(page)
    expect("999 000 0018" in body and "CASE-42" in body, "the ASN lacks the child or the case")
    expect("Acknowledge" in body, "no acknowledgement form")
    browser.check_page("oidc-notification")
    expect(len(callbacks) == 1, f"callbacks seen: {len(callbacks)}")
    return asn_id, callbacks[0]


def refused(browser, name, what, signed_out=True):
    """The sign-in page with its error, checked; and (unless the browser was
    signed in before) no session made."""
    page = browser.page
    expect(REFUSED in text_of(page), f"{what}: not refused ({page.url})")
    browser.check_page(name)
    if signed_out:
        page.goto(page.url.split("/portal/")[0] + "/portal/notifications")
        expect("/portal/sign-in" in page.url, f"{what}: made a session")


class Held(Exception):
    """The redirect back to the portal, not followed."""


def attacker_callback(service, login):
    """Someone else's whole sign-in without a browser (a cookie jar and the
    provider's forms), stopped at the provider's redirect back: the callback
    URL, with its code and state, never used."""

    class StopAtCallback(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if "/portal/sign-in/callback" in newurl:
                raise Held(newurl)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), StopAtCallback)
    try:
        login_page = opener.open(f"{service.base}/portal/sign-in/oidc", timeout=10).geturl()
        form = urllib.parse.urlencode({"prompt": "login", "login": login, "password": "x"})
        consent_page = opener.open(login_page, data=form.encode(), timeout=10).geturl()
        form = urllib.parse.urlencode({"prompt": "consent"})
        opener.open(consent_page, data=form.encode(), timeout=10)
    except Held as held:
        return str(held)
    raise Failure("the provider never sent the attacker back to the portal")


def journey_denials(service, browser, replay):
    print("journey C: replayed and stolen callbacks, an unknown role, a made-up state")
    page = browser.page
    # The callback again, in the browser that used it: the attempt is gone.
    status = page.goto(replay).status
    expect(status == 403, f"a replayed callback answered {status}")
    browser.console.clear()
    refused(browser, "oidc-denied-replay", "a replayed callback", signed_out=False)

    # A callback started by someone else (their own sign-in, stopped at the
    # redirect back) and sent to a victim, to sign the victim in as them
    # (login CSRF): refused, as the victim's browser holds no binding cookie.
    stolen = attacker_callback(service, "duty-1")
    browser.fresh()
    page = browser.page
    status = page.goto(stolen).status
    expect(status == 403, f"a callback from another browser answered {status}")
    browser.console.clear()
    refused(browser, "oidc-denied-other-browser", "a callback from another browser")

    # Claims that make no caller (role "visitor").
    browser.fresh()
    page = browser.page
    page.goto(f"{service.base}/portal/sign-in")
    keys(page, "#oidc", "Enter")
    through_provider(browser, "stranger")
    browser.console.clear()
    refused(browser, "oidc-denied-unknown-role", "an account that is no caller")

    # A state never issued.
    status = page.goto(f"{service.base}/portal/sign-in/callback?code=x&state={'A' * 43}").status
    expect(status == 403, f"a made-up state answered {status}")
    browser.console.clear()
    expect(REFUSED in text_of(page), "a made-up state was not refused")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpis", required=True)
    parser.add_argument("--provider", required=True)
    parser.add_argument("--axe", required=True)
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--capture", default=os.environ.get("CPIS_PRIVACY_CAPTURE_DIR"))
    args = parser.parse_args()
    os.makedirs(args.artifacts, exist_ok=True)
    for old in os.listdir(args.artifacts):
        if old.endswith(".png"):
            os.remove(os.path.join(args.artifacts, old))
    axe_source = open(args.axe, encoding="utf-8").read()
    work = tempfile.mkdtemp(prefix="cpis-portal-oidc-")
    portal_port = free_port()
    base = f"http://127.0.0.1:{portal_port}"
    provider = service = None
    failed = None
    try:
        provider = OpenIdProvider(args.provider, work, f"{base}/portal/sign-in/callback")
        service = Service(args.cpis, work, addr=f"127.0.0.1:{portal_port}", extra=[
            "--oidc-issuer", provider.issuer, "--oidc-client-id", "cpis-portal",
            "--oidc-client-secret-file", provider.secret_file,
            "--oidc-redirect-base", base, "--oidc-scopes", "cpis",
            "--oidc-label", "Sign in with the test identity provider"])
        council_token = service.token(*COUNCIL_CALLER)
        setup(service, council_token)
        with sync_playwright() as playwright:
            Browser._playwright = playwright
            browser = Browser(playwright, axe_source, args.artifacts)
            try:
                journey_clinician(service, browser)
                browser.fresh()
                _, callback = journey_duty_team(service, browser)
                journey_denials(service, browser, callback)
            finally:
                browser.close()
    except Failure as failure:
        failed = str(failure)
    finally:
        for part in (service, provider):
            if part is not None:
                part.stop()
        if args.capture:
            os.makedirs(args.capture, exist_ok=True)
            if service is not None:
                shutil.copy(service.log_path, os.path.join(args.capture, "portal-oidc-serve-logs.txt"))
            if provider is not None:
                shutil.copy(provider.log_path, os.path.join(args.capture, "portal-oidc-provider-logs.txt"))
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        print(f"portal OpenID Connect journeys: FAILED: {failed}", file=sys.stderr)
        return 1
    print(f"portal OpenID Connect journeys: 3 passed, 0 failed "
          f"({len(os.listdir(args.artifacts))} screenshots in {args.artifacts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
