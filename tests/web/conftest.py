"""Fixtures of the browser test: a real `meter serve` seeded through its API and CLI, and a
real headless Chromium driven by Selenium (/usr/bin/chromium, /usr/bin/chromedriver).

Environment: METER_BIN (the workspace's `meter` binary), WEB_TEST_OUT (where screenshots
go, default target/web-test).
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "mk_web_test_admin_" + uuid.uuid4().hex


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """The meter HTTP API, as the test's ground truth."""

    def __init__(self, base):
        self.base = base

    def call(self, method, path, key, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + "/api/subscription" + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + key)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return res.status, json.loads(res.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def ok(self, method, path, key, body=None):
        status, body = self.call(method, path, key, body)
        assert status == 200, (method, path, status, body)
        return body["data"]


class Server:
    def __init__(self, meter, db, port):
        self.meter = meter
        self.db = db
        self.base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, METER_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY, RUST_LOG="warn")
        self.proc = subprocess.Popen(
            [meter, "serve", "--addr", f"127.0.0.1:{port}", "--db", str(db),
             "--aggregate-seconds", "3600"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError("meter serve exited before listening")
            if "listening on" in line:
                break
        else:
            raise RuntimeError("meter serve did not start in 60 s")

    def cli(self, *args):
        out = subprocess.run([self.meter, *args, "--db", str(self.db)], env=dict(os.environ, RUST_LOG="warn"),
                             check=True, capture_output=True, text=True)
        return out.stdout

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def event(eid, user, provider, model, ts, input_tokens=0, output_tokens=0, **extra):
    e = {"event_id": eid, "user_id": user, "provider": provider, "model": model,
         "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "input_tokens": input_tokens,
         "output_tokens": output_tokens, "status_code": 200, "latency_ms": 250}
    e.update(extra)
    return e


PROMO_EXPIRES = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0)


def seed_prepaid(api, service_key, now):
    """pam, on a prepaid plan (issue 19): $10 purchased and a $5 promo that expires in 30
    days; a reservation holds $0.30 and a recorded call drew $0.60 (from the promo, which
    expires first): balance $14.40, held $0.30, available $14.10. The org acme's wallet:
    $3, below its $5 low-balance level."""
    api.ok("PUT", "/plans/payg", ADMIN_KEY,
           {"tier": "custom", "monthly_price_usd": "0", "yearly_price_usd": "0",
            "limits": {"calls:gemini": 1000}, "payment": "prepaid"})
    api.ok("PUT", "/user/pam/subscription", ADMIN_KEY, {"plan": "payg"})
    api.ok("PUT", "/wallet/user/pam/grants/purchase-1", ADMIN_KEY,
           {"amount_usd": "10.00", "kind": "purchase", "note": "order 1"})
    api.ok("PUT", "/wallet/user/pam/grants/spring-promo", ADMIN_KEY,
           {"amount_usd": "5", "kind": "promo",
            "expires_at": PROMO_EXPIRES.strftime("%Y-%m-%dT%H:%M:%SZ")})
    held = api.ok("POST", "/check", service_key,
                  {"user_id": "pam", "provider": "gemini", "model": "gemini-2.5-flash",
                   "estimated_input_tokens": 1_000_000, "reserve": True})
    assert held["allowed"] and held["reservation_id"], held
    data = api.ok("POST", "/usage", service_key, {"events": [
        event("p-1", "pam", "gemini", "gemini-2.5-flash", now - timedelta(seconds=5), 2_000_000, 0)]})
    assert data["events"][0]["status"] == "recorded", data
    # The org acme's wallet (listed in the tenant view): $3 granted under a $5 level.
    api.ok("PUT", "/wallet/org/acme/grants/pool", ADMIN_KEY, {"amount_usd": "3", "kind": "purchase"})
    api.ok("PUT", "/wallet/org/acme/settings", ADMIN_KEY, {"low_balance_usd": "5"})


def seed_org(api, service_key, now):
    """The org initech (SPEC §10, §14: its link opens the org page): on the `orgteam` plan
    (60 gemini calls, 200,000 tokens a period); 30 gemini and 6 openai calls this period by
    ivan and irene (ivan's in team research); a soft daily budget whose 50 % alert the org
    owns; no wallet grant (the admin view's wallet list stays acme's and pam's)."""
    api.ok("PUT", "/plans/orgteam", ADMIN_KEY,
           {"tier": "custom", "monthly_price_usd": "49", "yearly_price_usd": "490",
            "description": "For teams", "limits": {"calls:gemini": 60, "tokens:*": 200000}})
    api.ok("PUT", "/org/initech/subscription", ADMIN_KEY, {"plan": "orgteam"})
    api.ok("PUT", "/budgets/initech-daily", ADMIN_KEY,
           {"scope": {"kind": "org", "org_id": "initech"}, "limits": {"calls:*": 60},
            "window": "day", "mode": "soft", "alert_thresholds": [50]})
    ts = now - timedelta(seconds=30)
    events = [event(f"i-{i}", "ivan" if i % 3 else "irene", "gemini", "gemini-2.5-flash", ts,
                    1000 + i, 200, org_id="initech", **({"team_id": "research"} if i % 3 else {}))
              for i in range(30)]
    events += [event(f"i-o-{i}", "irene", "openai", "gpt-4o-mini", ts, 2000, 400, org_id="initech")
               for i in range(6)]
    data = api.ok("POST", "/usage", service_key, {"events": events})
    assert all(r["status"] == "recorded" for r in data["events"]), data


def seed(server, api, service_key):
    """Users over the current and the previous periods (events older than 35 days are
    refused by the API, so history is what the window allows), alerts, unpriced usage,
    subscriptions, and invoices closed by `meter aggregate`."""
    now = datetime.now(timezone.utc)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    current = max(now - timedelta(minutes=2), month)
    previous = month - timedelta(hours=2)
    oldest = now - timedelta(days=34)
    batches = {
        # alice, free plan: 92 of 100 gemini calls -> the 80 % and 90 % alerts, a
        # recommendation to upgrade; usage in the previous periods too.
        "alice": [event(f"a-cur-{i}", "alice", "gemini", "gemini-2.5-flash", current, 500 + i, 100)
                  for i in range(92)]
        + [event("a-cur-mistral", "alice", "mistral", "mistral-small-latest", current, 1200, 300)]
        + [event(f"a-prev-{i}", "alice", "gemini", "gemini-2.5-flash", previous, 700, 90 + i) for i in range(20)]
        + [event(f"a-old-{i}", "alice", "gemini", "gemini-2.5-flash", oldest, 900, 120) for i in range(5)],
        # bob: openai and anthropic, then upgraded to basic.
        "bob": [event(f"b-cur-{i}", "bob", "openai", "gpt-4o-mini", current, 2000, 500 + i) for i in range(40)]
        + [event(f"b-cur-c-{i}", "bob", "anthropic", "claude-haiku-4-5", current, 1000, 300) for i in range(10)]
        + [event(f"b-prev-{i}", "bob", "openai", "gpt-4o-mini", previous, 3000, 700) for i in range(15)],
        # carol: some usage without a price in force.
        "carol": [event(f"c-cur-{i}", "carol", "gemini", "gemini-2.5-flash", current, 100, 10) for i in range(4)]
        + [event(f"c-unpriced-{i}", "carol", "gemini", "gemini-9-imaginary", current, 100, 10) for i in range(3)],
    }
    for user, events in batches.items():
        for i in range(0, len(events), 100):
            data = api.ok("POST", "/usage", service_key, {"events": events[i:i + 100]})
            assert all(r["status"] == "recorded" for r in data["events"]), data
    api.ok("PUT", "/user/bob/subscription", ADMIN_KEY, {"plan": "basic"})
    seed_prepaid(api, service_key, now)
    api.ok("PUT", "/user/dave/subscription", ADMIN_KEY, {"plan": "pro"})
    # An org's alert: a soft daily budget on acme's pooled calls, reached by dave's calls
    # naming acme (the org owns the alert, no user does).
    api.ok("PUT", "/budgets/acme-daily", ADMIN_KEY,
           {"scope": {"kind": "org", "org_id": "acme"}, "limits": {"calls:*": 4},
            "window": "day", "mode": "soft", "alert_thresholds": [50]})
    org_events = [event(f"d-acme-{i}", "dave", "gemini", "gemini-2.5-flash", now, 100, 10, org_id="acme")
                  for i in range(2)]
    data = api.ok("POST", "/usage", service_key, {"events": org_events})
    assert all(r["status"] == "recorded" for r in data["events"]), data
    # A second org (tenant view, Organisations and Budgets): globex subscribes to basic,
    # has a hard monthly cost budget, and dave's openai calls naming it cost more than
    # acme's, so it ranks first.
    api.ok("PUT", "/org/globex/subscription", ADMIN_KEY, {"plan": "basic"})
    api.ok("PUT", "/budgets/globex-monthly", ADMIN_KEY,
           {"scope": {"kind": "org", "org_id": "globex"}, "limits": {"cost_usd": "50"},
            "window": "month", "mode": "hard"})
    globex_events = [event(f"d-globex-{i}", "dave", "openai", "gpt-4o-mini", now, 4000, 800, org_id="globex")
                     for i in range(3)]
    data = api.ok("POST", "/usage", service_key, {"events": globex_events})
    assert all(r["status"] == "recorded" for r in data["events"]), data
    seed_org(api, service_key, now)
    # Close the ended periods into invoices, as the schedule would.
    report = json.loads(server.cli("aggregate", "--grace-minutes", "0"))
    assert report["invoices_created"] >= 1, report


@pytest.fixture(scope="session")
def out_dir():
    out = Path(os.environ.get("WEB_TEST_OUT", ROOT / "target" / "web-test"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")
def server():
    meter = os.environ.get("METER_BIN") or str(ROOT / "target" / "debug" / "meter")
    tmp = Path(tempfile.mkdtemp(prefix="meter-web-"))
    s = Server(meter, tmp / "meter.db", free_port())
    try:
        s.api = Api(s.base)
        s.service_key = s.cli("keys", "create", "--tenant", "default", "--role", "service").strip()
        s.admin_key = ADMIN_KEY
        seed(s, s.api, s.service_key)
        yield s
    finally:
        s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    profile = tempfile.mkdtemp(prefix="meter-web-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--lang=en-US", "--window-size=1280,900"]:
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"intl.accept_languages": "en-US"})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path="/usr/bin/chromedriver"))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
