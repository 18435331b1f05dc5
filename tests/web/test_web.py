"""The web dashboard in a real headless Chromium against a seeded `meter serve`
(SPEC §14, docs/web.md): the admin view and a user view through an end-user token show
the API's numbers, the limit bars are as wide as their percentages, the chart has one
point per period, mark-read works from the keyboard, a token for another user is refused,
the page works at phone width, and the console stays clean. Screenshots go to
WEB_TEST_OUT (target/web-test).

The tests run in file order and share one browser (the steps of one visit).
"""

from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import quote

import pytest
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

# ---------------------------------------------------------------------------------------
# Expected text: what en-US formatting of the API's values must look like.


def money(s):
    """en-US money from an exact decimal string: grouped, at least two decimals, no rounding."""
    negative = s.startswith("-") and Decimal(s) != 0
    integer, _, fraction = s.lstrip("-").partition(".")
    return ("-" if negative else "") + "$" + f"{int(integer):,}" + "." + fraction.ljust(2, "0")


def count(n):
    return f"{int(n):,}"


def percent(p):
    text = f"{Decimal(str(p)):.2f}".rstrip("0").rstrip(".")
    return text + "%"


# ---------------------------------------------------------------------------------------
# Browser helpers


def wait(driver, css, timeout=20):
    try:
        return WebDriverWait(driver, timeout).until(
            lambda d: d.find_element(By.CSS_SELECTOR, css))
    except TimeoutException:
        errors = driver.find_elements(By.ID, "error")
        raise AssertionError(f"{css} never appeared; page says: "
                             f"{errors[0].text if errors else driver.find_element(By.TAG_NAME, 'body').text[:500]}")


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def screenshot(driver, out_dir, name, width, height=None):
    """A full-page screenshot at `width` CSS pixels."""
    driver.set_window_size(width, height or 900)
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(height or 900, full + 100))
    driver.execute_script("window.scrollTo(0, 0)")
    path = out_dir / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 900)
    assert path.stat().st_size > 10_000, path
    return path


def cells(row):
    return row.find_elements(By.CSS_SELECTOR, "td")


# ---------------------------------------------------------------------------------------
# The page itself


def test_the_page_and_its_assets_carry_strict_headers(server):
    import urllib.request

    with urllib.request.urlopen(server.base + "/") as res:
        page = res.read().decode()
        csp = res.headers["Content-Security-Policy"]
        assert res.headers["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assets = [part.split('"')[0] for part in page.split('"/ui/')[1:]]
    assert len(assets) == 6, assets
    for asset in assets:
        with urllib.request.urlopen(server.base + "/ui/" + asset) as res:
            assert res.headers["Cache-Control"] == "public, max-age=31536000, immutable", asset
            assert res.headers["X-Content-Type-Options"] == "nosniff"
            assert len(res.read()) > 100


# ---------------------------------------------------------------------------------------
# Admin view


def test_admin_view_ranks_users_by_cost_with_the_apis_numbers(server, browser, out_dir):
    browser.get(server.base + "/")
    key = wait(browser, "#admin-key")
    assert browser.switch_to.active_element == key, "the key field has focus"
    key.send_keys(server.admin_key + Keys.ENTER)
    wait(browser, "#users tbody tr")

    api_users = []
    cursor = None
    while True:
        data = server.api.ok("GET", "/admin/users?limit=100" + (f"&cursor={cursor}" if cursor else ""),
                             server.admin_key)
        api_users += data["users"]
        cursor = data["next_cursor"]
        if not cursor:
            break
    assert {u["user_id"] for u in api_users} == {"alice", "bob", "carol", "dave", "pam", "ivan", "irene"}
    ranked = sorted(api_users, key=lambda u: (-Decimal(u["cost_usd"]), u["user_id"]))
    rows = browser.find_elements(By.CSS_SELECTOR, "#users tbody tr")
    assert [r.get_attribute("data-user") for r in rows] == [u["user_id"] for u in ranked]
    for row, u in zip(rows, ranked):
        c = cells(row)
        assert c[1].text == u["user_id"]
        assert c[2].text == u["plan"]
        assert c[4].text == count(u["calls"])
        assert c[5].get_attribute("data-value") == u["cost_usd"]
        assert c[5].text == money(u["cost_usd"])
        assert u["usage_status"].replace("_", " ") in c[6].text
        assert c[7].text == count(u["unpriced_calls"])
        assert c[8].text == count(u["unread_alerts"])
    total = sum((Decimal(u["cost_usd"]) for u in api_users), Decimal(0))
    shown_total = browser.find_element(By.ID, "total-cost")
    assert Decimal(shown_total.get_attribute("data-value")) == total
    assert shown_total.text == money(shown_total.get_attribute("data-value"))
    assert browser.find_element(By.ID, "total-unpriced").text == count(sum(u["unpriced_calls"] for u in api_users))

    # Unpriced usage: carol's three calls.
    unpriced = browser.find_element(By.ID, "unpriced").text
    assert "carol" in unpriced and "3" in unpriced
    # Latest alerts: the API's, in its order.
    alerts = server.api.ok("GET", "/admin/alerts?limit=20", server.admin_key)["alerts"]
    assert len(alerts) >= 2
    shown = [r.get_attribute("data-alert") for r in browser.find_elements(By.CSS_SELECTOR, "#tenant-alerts tbody tr")]
    assert shown == [a["id"] for a in alerts]
    # An org's alert names its org, not a user (no user link).
    org_alert = next(a for a in alerts if a.get("org_id") == "acme")
    assert "user_id" not in org_alert and org_alert["scope"] == {"kind": "org", "org_id": "acme"}
    row = browser.find_element(By.CSS_SELECTOR, f'#tenant-alerts tr[data-alert="{org_alert["id"]}"]')
    assert cells(row)[1].text == "org acme"
    assert row.find_elements(By.CSS_SELECTOR, "a.user-link") == []
    # Plans with their exact prices.
    plans = server.api.ok("GET", "/plans", server.admin_key)["plans"]
    for p in plans:
        row = browser.find_element(By.CSS_SELECTOR, f'#plans tr[data-plan="{p["name"]}"]')
        assert cells(row)[2].text == money(p["monthly_price_usd"])
    assert "Organisations" in browser.find_element(By.ID, "orgs").text

    screenshot(browser, out_dir, "admin-desktop", 1280)
    assert console_errors(browser) == []


def test_admin_view_lists_the_wallets_with_the_apis_numbers(server, browser):
    # The admin view of the test before (still open): its wallets panel.
    wait(browser, "#tenant-wallets tbody tr")
    api_wallets = []
    cursor = None
    while True:
        data = server.api.ok("GET", "/admin/wallets?limit=100" + (f"&cursor={cursor}" if cursor else ""),
                             server.admin_key)
        api_wallets += data["wallets"]
        cursor = data["next_cursor"]
        if not cursor:
            break
    keys = [w["subscriber"]["kind"] + "/" + w["subscriber"]["id"] for w in api_wallets]
    assert keys == ["org/acme", "user/pam"], keys
    rows = browser.find_elements(By.CSS_SELECTOR, "#tenant-wallets tbody tr")
    assert [r.get_attribute("data-wallet") for r in rows] == keys
    for row, w, key in zip(rows, api_wallets, keys):
        c = cells(row)
        # The admin list's figures are the wallet's own read's.
        own = server.api.ok("GET", "/wallet/" + key, server.admin_key)
        for i, field in [(1, "balance_usd"), (2, "held_usd"), (3, "available_usd")]:
            assert w[field] == own[field], (key, field)
            assert c[i].get_attribute("data-value") == w[field], (key, field)
            assert c[i].text == money(w[field]), (key, field)
        if w["low_balance_usd"] is None:
            assert c[4].text == "—"
        else:
            assert c[4].text == money(w["low_balance_usd"])
        state = "depleted" if w["depleted"] else "low" if w["low_balance"] else "ok"
        assert row.get_attribute("data-state") == state, key
    pam = rows[1]
    assert [c.text for c in cells(pam)[1:4]] == ["$14.40", "$0.30", "$14.10"]
    assert cells(pam)[0].find_element(By.CSS_SELECTOR, "a.user-link").text == "pam"
    acme = rows[0]
    assert cells(acme)[0].text == "org acme" and acme.get_attribute("data-state") == "low"
    assert "low balance" in cells(acme)[5].text
    assert not browser.find_element(By.ID, "more-wallets").is_displayed(), "one page holds them all"
    assert console_errors(browser) == []

    # Past a page (100 wallets): the page reads one, "Show more wallets" reads the next.
    for i in range(100):
        server.api.ok("PUT", f"/wallet/user/w{i:03}/grants/g", server.admin_key,
                      {"amount_usd": "0.5", "kind": "promo"})
    browser.refresh()
    wait(browser, "#tenant-wallets tbody tr")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#tenant-wallets tbody tr")) == 100
    more = browser.find_element(By.ID, "more-wallets")
    assert more.is_displayed()
    more.click()
    WebDriverWait(browser, 20).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tenant-wallets tbody tr")) == 102)
    first = server.api.ok("GET", "/admin/wallets?limit=100", server.admin_key)
    second = server.api.ok("GET", "/admin/wallets?limit=100&cursor=" + first["next_cursor"], server.admin_key)
    assert second["next_cursor"] is None
    expected = [w["subscriber"]["kind"] + "/" + w["subscriber"]["id"] for w in first["wallets"] + second["wallets"]]
    rows = browser.find_elements(By.CSS_SELECTOR, "#tenant-wallets tbody tr")
    assert [r.get_attribute("data-wallet") for r in rows] == expected
    assert expected[-1] == "user/w099" and expected[1] == "user/pam"
    last = cells(rows[-1])
    assert last[3].get_attribute("data-value") == second["wallets"][-1]["available_usd"] == "0.5"
    assert not browser.find_element(By.ID, "more-wallets").is_displayed()
    assert console_errors(browser) == []


def test_admin_view_ranks_orgs_by_cost_and_lists_their_budgets(server, browser, out_dir):
    # The admin view of the tests before (still open): Organisations and Budgets.
    wait(browser, "#orgs-table tbody tr")
    api_orgs = []
    cursor = None
    while True:
        data = server.api.ok("GET", "/admin/orgs?limit=100" + (f"&cursor={cursor}" if cursor else ""),
                             server.admin_key)
        api_orgs += data["orgs"]
        cursor = data["next_cursor"]
        if not cursor:
            break
    assert [o["org_id"] for o in api_orgs] == ["acme", "globex", "initech"]
    ranked = sorted(api_orgs, key=lambda o: (-Decimal(o["cost_usd"]), o["org_id"]))
    order = [o["org_id"] for o in ranked]
    assert order.index("globex") < order.index("acme"), "globex's calls cost more"
    rows = browser.find_elements(By.CSS_SELECTOR, "#orgs-table tbody tr")
    assert [r.get_attribute("data-org") for r in rows] == [o["org_id"] for o in ranked]
    for row, o in zip(rows, ranked):
        # The list's figures are the org's own usage read's.
        own = server.api.ok("GET", f"/org/{o['org_id']}/usage", server.admin_key)
        assert o["calls"] == own["total_calls"] and Decimal(o["cost_usd"]) == Decimal(own["total_cost"])
        assert o["plan"] == own["plan"]
        c = cells(row)
        assert c[1].text == o["org_id"]
        assert c[2].text == (o["plan"] or "none")
        assert c[3].text == (o["subscription_status"] or "none")
        assert c[4].text == count(o["calls"])
        assert c[5].get_attribute("data-value") == o["cost_usd"]
        assert c[5].text == money(o["cost_usd"])
        assert o["usage_status"].replace("_", " ") in c[6].text
        assert c[7].text == count(o["unpriced_calls"])
    assert {(o["org_id"], o["plan"], o["calls"]) for o in ranked} == {
        ("globex", "basic", 3), ("acme", None, 2), ("initech", "orgteam", 36)}
    total = sum((Decimal(o["cost_usd"]) for o in api_orgs), Decimal(0))
    shown_total = browser.find_element(By.ID, "orgs-total-cost")
    assert Decimal(shown_total.get_attribute("data-value")) == total
    assert browser.find_element(By.ID, "orgs-total-calls").text == count(3 + 2 + 36)

    # Budgets: the shown orgs' budgets, as GET /budgets lists them.
    api_budgets = []
    for o in ranked:
        api_budgets += server.api.ok("GET", f"/budgets?org_id={o['org_id']}", server.admin_key)["budgets"]
    own = {"globex": "globex-monthly", "acme": "acme-daily", "initech": "initech-daily"}
    assert [b["budget_id"] for b in api_budgets] == [own[o] for o in order]
    brows = browser.find_elements(By.CSS_SELECTOR, "#budgets tbody tr")
    assert [r.get_attribute("data-budget") for r in brows] == [b["budget_id"] for b in api_budgets]
    for row, b in zip(brows, api_budgets):
        c = cells(row)
        assert c[1].text == "org " + b["scope"]["org_id"]
        assert c[3].text == b["window"] and c[4].text == b["mode"]
    limits = {"globex-monthly": "cost_usd " + money("50"), "acme-daily": "calls:* 4",
              "initech-daily": "calls:* 60"}
    for row, b in zip(brows, api_budgets):
        assert cells(row)[2].text == limits[b["budget_id"]]
    screenshot(browser, out_dir, "admin-orgs", 1280)
    assert console_errors(browser) == []


def test_one_click_opens_a_user_from_the_admin_view(server, browser):
    link = browser.find_element(By.CSS_SELECTOR, '#users a.user-link[data-user="bob"]')
    link.click()
    wait(browser, "#limits li")
    assert browser.find_element(By.ID, "user-id").text == "bob"
    d = server.api.ok("GET", "/dashboard/bob", server.admin_key)
    assert browser.find_element(By.ID, "plan-name").text == d["summary"]["plan"] == "basic"
    assert browser.find_element(By.ID, "period-cost").text == money(d["current_usage"]["total_cost"])
    assert console_errors(browser) == []
    browser.find_element(By.ID, "sign-out").click()
    wait(browser, "#admin-key")


# ---------------------------------------------------------------------------------------
# End-user view through a token


@pytest.fixture(scope="module")
def alice_token(server):
    data = server.api.ok("POST", "/tokens", server.service_key, {"user_id": "alice", "ttl_seconds": 900})
    assert data["token"].startswith("mt_") and data["scope"] == {"kind": "user", "user_id": "alice"}
    return data["token"]


def test_a_token_link_opens_the_users_view_with_the_apis_numbers(server, browser, alice_token, out_dir):
    browser.get(server.base + "/#token=" + quote(alice_token))
    wait(browser, "#limits li")
    assert "#token=" not in browser.current_url, "the token leaves the address bar"
    assert browser.find_element(By.ID, "user-id").text == "alice"
    d = server.api.ok("GET", "/dashboard/alice", alice_token)
    cu = d["current_usage"]
    assert browser.find_element(By.ID, "period-cost").text == money(cu["total_cost"])
    assert browser.find_element(By.ID, "period-calls").text == count(cu["total_calls"])
    projected = d["projections"]["projected_monthly_cost"]
    shown = browser.find_element(By.ID, "projected-cost")
    if projected is None:
        assert shown.text == "—"
    else:
        # The projection moves with the clock between the page's read and this one.
        value = Decimal(shown.get_attribute("data-value"))
        assert abs(value - Decimal(projected)) <= Decimal(projected) / 100
        cents = str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
        assert shown.text == "≈ " + money(cents)
    assert browser.find_element(By.ID, "usage-status").text == d["summary"]["usage_status"].replace("_", " ")

    # Every limit as a bar as wide as its percentage, coloured by threshold.
    items = browser.find_elements(By.CSS_SELECTOR, "#limits li")
    assert [i.get_attribute("data-metric") for i in items] == list(d["limits"]["limits"])
    for item in items:
        metric = item.get_attribute("data-metric")
        pct = d["usage_percentages"][metric]
        assert float(item.get_attribute("data-percentage")) == pct
        assert item.find_element(By.CSS_SELECTOR, ".pct").text == percent(pct)
        limit = d["limits"]["limits"][metric]
        shown_limit = item.find_element(By.CSS_SELECTOR, ".limit").text
        assert shown_limit == (money(limit) if metric == "cost_usd" else count(limit))
        fill = item.find_element(By.CSS_SELECTOR, ".bar-fill")
        track = item.find_element(By.CSS_SELECTOR, ".bar")
        width = min(100.0, pct)
        assert float(fill.value_of_css_property("width").removesuffix("px")) == pytest.approx(
            track.rect["width"] * width / 100, abs=1.0), metric
        level = "over" if pct >= 100 else "high" if pct >= 90 else "warn" if pct >= 80 else "ok"
        assert f"level-{level}" in fill.get_attribute("class"), (metric, pct)
    gemini = browser.find_element(By.CSS_SELECTOR, '#limits li[data-metric="calls:gemini"]')
    assert gemini.find_element(By.CSS_SELECTOR, ".used").text == "92"
    assert "level-high" in gemini.find_element(By.CSS_SELECTOR, ".bar-fill").get_attribute("class")

    # The recommendation to upgrade.
    assert d["recommendations"] and d["recommendations"][0]["kind"] == "upgrade"
    banner = browser.find_element(By.ID, "recommendation").text
    assert d["recommendations"][0]["plan"] in banner and d["recommendations"][0]["reason"] in banner

    # Invoices, as the API has them.
    invoices = server.api.ok("GET", "/billing/alice", alice_token)["invoices"]
    assert invoices, "meter aggregate closed alice's previous period"
    rows = browser.find_elements(By.CSS_SELECTOR, "#invoices tbody tr")
    assert [r.get_attribute("data-invoice") for r in rows] == [i["id"] for i in invoices]
    for row, inv in zip(rows, invoices):
        assert cells(row)[0].text == inv["period"]["name"]
        assert cells(row)[2].text == money(inv["total_usd"])
        # What the invoice states beside its lines: the exact total and how it was rounded.
        stated = row.find_element(By.CSS_SELECTOR, ".rounding")
        exact = stated.find_element(By.CSS_SELECTOR, "[data-value]")
        assert exact.get_attribute("data-value") == inv["extra"]["exact_total_usd"]
        assert exact.get_attribute("textContent") == money(inv["extra"]["exact_total_usd"])
        assert inv["extra"]["rounding"] in stated.get_attribute("textContent")

    screenshot(browser, out_dir, "user-desktop", 1280)
    assert console_errors(browser) == []


def test_the_trend_chart_has_one_point_per_period(server, browser, alice_token):
    t = server.api.ok("GET", "/usage/alice/trends?months=6", alice_token)
    chart = browser.execute_script("""
        const u = document.getElementById('trend-chart').uplot;
        return {x: u.data[0].length, series: u.series.slice(1).map(s => s.label), data: u.data.slice(1)};
    """)
    assert chart["x"] == len(t["periods"]) == 6
    for label, values in zip(chart["series"], chart["data"]):
        assert [Decimal(str(v)) for v in values] == [Decimal(v) for v in t["provider_trends"][label]["cost"]]
    assert "gemini" in chart["series"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#trend-table tbody tr")
    assert [r.find_element(By.TAG_NAME, "th").get_attribute("textContent") for r in rows] == t["periods"]
    assert sum(1 for c in t["total_calls"] if c > 0) >= 2, "usage in the current and an earlier period"

    # 24 months, chosen from the keyboard.
    select = browser.find_element(By.ID, "trend-months")
    select.send_keys("24")
    WebDriverWait(browser, 20).until(lambda d: d.execute_script(
        "const e = document.getElementById('trend-chart'); return e && e.uplot && e.uplot.data[0].length") == 24)
    assert console_errors(browser) == []


def test_mark_read_from_the_keyboard(server, browser, alice_token):
    before = server.api.ok("GET", "/alerts/alice?limit=20", alice_token)
    assert before["unread_count"] >= 2
    assert browser.find_element(By.ID, "unread-count").text == f"{before['unread_count']} unread"
    shown = [li.get_attribute("data-alert") for li in browser.find_elements(By.CSS_SELECTOR, "#alerts li")]
    assert shown == [a["id"] for a in before["alerts"]]
    button = browser.find_element(By.CSS_SELECTOR, "#alerts li.unread .mark-read")
    alert_id = button.find_element(By.XPATH, "./ancestor::li").get_attribute("data-alert")
    button.send_keys(Keys.ENTER)
    WebDriverWait(browser, 20, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: d.find_element(By.ID, "unread-count").text == f"{before['unread_count'] - 1} unread")
    after = server.api.ok("GET", "/alerts/alice?limit=20", alice_token)
    assert after["unread_count"] == before["unread_count"] - 1
    assert next(a for a in after["alerts"] if a["id"] == alert_id)["read"] is True
    li = browser.find_element(By.CSS_SELECTOR, f'#alerts li[data-alert="{alert_id}"]')
    assert "read" in li.get_attribute("class").split() and not li.find_elements(By.CSS_SELECTOR, ".mark-read")
    assert console_errors(browser) == []


def test_the_page_fits_a_phone(server, browser, out_dir):
    browser.set_window_size(390, 844)
    wait(browser, "#limits li")
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{overflow}px of horizontal scrolling at phone width"
    screenshot(browser, out_dir, "user-phone", 390, 844)
    browser.set_window_size(1280, 900)
    assert console_errors(browser) == []


def test_keyboard_reaches_the_skip_link_first_and_every_control(server, browser):
    browser.get(server.base + "/#/user/alice")
    browser.refresh()  # a fresh load: focus starts at the top of the page
    wait(browser, "#limits li")
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.get_attribute("id") == "skip"
    # Tabbing on reaches the chart's controls and the alerts' buttons.
    reached = set()
    for _ in range(60):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        el = browser.switch_to.active_element
        reached.add(el.get_attribute("id") or el.get_attribute("class"))
    assert {"trend-metric", "trend-months", "sign-out"} <= reached, reached
    assert console_errors(browser) == []


def test_a_token_is_refused_for_another_user_and_for_everything_else(server, browser, alice_token):
    # Through the API.
    for method, path in [("GET", "/dashboard/bob"), ("GET", "/usage/bob"), ("GET", "/billing/bob"),
                         ("GET", "/admin/users"), ("GET", "/plans"), ("POST", "/tokens")]:
        status, body = server.api.call(method, path, alice_token, {} if method == "POST" else None)
        assert (status, body["error"]["code"]) == (403, "forbidden"), (method, path)
    # Through the page: alice's link opened on bob's view shows the refusal.
    browser.get(server.base + "/#/user/bob")
    error = wait(browser, "#error")
    assert "403" in error.text and "forbidden" in error.text and "alice" in error.text
    logged = console_errors(browser)
    assert logged and all("403" in e["message"] for e in logged), logged
    # A bob token works for bob (the refusal was about the user, not the page).
    bob = server.api.ok("POST", "/tokens", server.service_key, {"user_id": "bob"})["token"]
    browser.get(server.base + "/#token=" + quote(bob))
    wait(browser, "#limits li")
    assert browser.find_element(By.ID, "user-id").text == "bob"
    assert console_errors(browser) == []


# ---------------------------------------------------------------------------------------
# A prepaid user's wallet (issue 19)


def test_a_prepaid_users_page_shows_the_wallet_with_the_apis_numbers(server, browser, out_dir):
    token = server.api.ok("POST", "/tokens", server.service_key, {"user_id": "pam"})["token"]
    browser.get(server.base + "/#token=" + quote(token))
    wait(browser, "#wallet-grants tbody tr")
    w = server.api.ok("GET", "/wallet/user/pam", token)
    # The seed's story, as the API has it: $15 granted, $0.60 drawn, $0.30 held.
    assert (w["balance_usd"], w["held_usd"], w["available_usd"]) == ("14.4", "0.3", "14.1"), w
    assert browser.find_element(By.ID, "wallet-balance").text == "$14.40"
    assert browser.find_element(By.ID, "wallet-held").text == "$0.30"
    assert browser.find_element(By.ID, "wallet-available").text == "$14.10"
    rows = browser.find_elements(By.CSS_SELECTOR, "#wallet-grants tbody tr")
    # The promo burns first (it expires first), then the purchase.
    assert [r.get_attribute("data-grant") for r in rows] == ["spring-promo", "purchase-1"]
    assert [g["grant_id"] for g in w["grants"]] == ["spring-promo", "purchase-1"]
    for row, g in zip(rows, w["grants"]):
        c = cells(row)
        assert c[0].text == g["grant_id"]
        assert c[1].text == g["kind"]
        assert c[2].text == money(g["amount_usd"])
        assert c[3].text == money(g["remaining_usd"])
        assert c[5].text == g["status"] == "active"
    promo, purchase = rows
    assert cells(promo)[3].text == "$4.40" and cells(purchase)[3].text == "$10.00"
    expiry = cells(promo)[4].find_element(By.CSS_SELECTOR, "time")
    assert expiry.get_attribute("datetime") == w["grants"][0]["expires_at"]
    assert w["grants"][0]["expires_at"] and w["grants"][1]["expires_at"] is None
    assert cells(purchase)[4].text == "never"
    screenshot(browser, out_dir, "user-wallet", 1280)
    assert console_errors(browser) == []


def test_a_postpaid_users_page_has_no_wallet_panel(server, browser, alice_token):
    browser.get(server.base + "/#token=" + quote(alice_token))
    wait(browser, "#limits li")
    assert browser.find_elements(By.ID, "wallet") == []


def test_a_postpaid_user_with_credit_sees_it_on_their_page(server, browser):
    # Granted here (after the tenant's wallet lists are checked): bob is on the postpaid
    # basic plan; a promo reduces his invoices, and his page shows it (§14: their wallet).
    server.api.ok("PUT", "/wallet/user/bob/grants/welcome", server.admin_key,
                  {"amount_usd": "5", "kind": "promo"})
    token = server.api.ok("POST", "/tokens", server.service_key, {"user_id": "bob"})["token"]
    browser.get(server.base + "/#token=" + quote(token))
    wait(browser, "#wallet")
    w = server.api.ok("GET", "/wallet/user/bob", token)
    assert browser.find_element(By.ID, "wallet-title").text == "Credit"
    assert browser.find_element(By.ID, "wallet-balance").text == money(w["balance_usd"])
    assert browser.find_element(By.ID, "wallet-available").text.startswith(money(w["available_usd"]))
    rows = browser.find_elements(By.CSS_SELECTOR, "#wallet-grants tbody tr")
    assert [r.get_attribute("data-grant") for r in rows] == [g["grant_id"] for g in w["grants"]] == ["welcome"]
    assert console_errors(browser) == []


# ---------------------------------------------------------------------------------------
# An organisation's page through an org token (SPEC §14)


@pytest.fixture(scope="module")
def initech_token(server):
    data = server.api.ok("POST", "/tokens", server.service_key, {"org_id": "initech", "ttl_seconds": 900})
    assert data["token"].startswith("mt_") and data["scope"] == {"kind": "org", "org_id": "initech"}
    return data["token"]


def test_an_org_token_link_opens_the_orgs_page_with_the_apis_numbers(server, browser, initech_token, out_dir):
    browser.get(server.base + "/#token=" + quote(initech_token))
    wait(browser, "#limits li")
    assert "#token=" not in browser.current_url, "the token leaves the address bar"
    assert browser.current_url.endswith("#/org/initech")
    assert browser.find_element(By.ID, "org-id").text == "initech"
    assert "initech" in browser.find_element(By.ID, "who").text
    d = server.api.ok("GET", "/org/initech/dashboard", initech_token)
    u = d["usage"]
    assert (u["plan"], u["total_calls"]) == ("orgteam", 36), u
    assert browser.find_element(By.ID, "plan-name").text == "orgteam"
    assert browser.find_element(By.ID, "period-cost").text == money(u["total_cost"])
    assert browser.find_element(By.ID, "period-calls").text == count(u["total_calls"])
    assert browser.find_element(By.ID, "org-members-count").text == count(d["total_users"]) == "2"
    projected = d["projected_cost"]
    shown = browser.find_element(By.ID, "projected-cost")
    if projected is None:
        assert shown.text == "—"
    else:
        value = Decimal(shown.get_attribute("data-value"))
        assert abs(value - Decimal(projected)) <= Decimal(projected) / 100
        cents = str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
        assert shown.text == "≈ " + money(cents)
    assert browser.find_element(By.ID, "usage-status").text == u["usage_status"].replace("_", " ")

    # Every limit of the org's plan as a bar over the pooled usage.
    items = browser.find_elements(By.CSS_SELECTOR, "#limits li")
    assert [i.get_attribute("data-metric") for i in items] == list(u["limits"]) == ["calls:gemini", "tokens:*"]
    for item in items:
        metric = item.get_attribute("data-metric")
        pct = u["usage_percentages"][metric]
        assert float(item.get_attribute("data-percentage")) == pct
        assert item.find_element(By.CSS_SELECTOR, ".pct").text == percent(pct)
        assert item.find_element(By.CSS_SELECTOR, ".limit").text == count(u["limits"][metric])
        fill = item.find_element(By.CSS_SELECTOR, ".bar-fill")
        track = item.find_element(By.CSS_SELECTOR, ".bar")
        assert float(fill.value_of_css_property("width").removesuffix("px")) == pytest.approx(
            track.rect["width"] * min(100.0, pct) / 100, abs=1.0), metric
    gemini = browser.find_element(By.CSS_SELECTOR, '#limits li[data-metric="calls:gemini"]')
    assert gemini.find_element(By.CSS_SELECTOR, ".used").text == "30"
    assert gemini.find_element(By.CSS_SELECTOR, ".pct").text == "50%"
    tokens = browser.find_element(By.CSS_SELECTOR, '#limits li[data-metric="tokens:*"]')
    assert tokens.find_element(By.CSS_SELECTOR, ".used").text == count(u["total_tokens"])

    # Usage by provider.
    rows = browser.find_elements(By.CSS_SELECTOR, "#org-provider-table tbody tr")
    assert [r.get_attribute("data-provider") for r in rows] == list(u["provider_breakdown"]) == ["gemini", "openai"]
    for row in rows:
        b = u["provider_breakdown"][row.get_attribute("data-provider")]
        c = cells(row)
        assert (c[0].text, c[1].text, c[2].text) == (count(b["calls"]), count(b["tokens"]), money(b["cost"]))

    # Members and teams, as the API lists them.
    m = server.api.ok("GET", "/org/initech/members?limit=100", initech_token)
    rows = browser.find_elements(By.CSS_SELECTOR, "#org-users tbody tr")
    assert [r.get_attribute("data-user") for r in rows] == [x["user_id"] for x in m["users"]]
    assert sorted(x["user_id"] for x in m["users"]) == ["irene", "ivan"]
    for row, x in zip(rows, m["users"]):
        assert [c.text for c in cells(row)] == [count(x["calls"]), count(x["tokens"]), money(x["cost_usd"])]
    rows = browser.find_elements(By.CSS_SELECTOR, "#org-teams tbody tr")
    assert [r.get_attribute("data-team") for r in rows] == [x["team_id"] for x in m["teams"]] == ["research"]
    assert cells(rows[0])[0].text == count(m["teams"][0]["calls"]) == "20"

    # The wallet and the plan.
    w = server.api.ok("GET", "/wallet/org/initech", initech_token)
    assert browser.find_element(By.ID, "wallet-balance").text == money(w["balance_usd"]) == "$0.00"
    assert browser.find_element(By.ID, "wallet-available").text == money(w["available_usd"])
    assert w["grants"] == [] and "No credit granted yet." in browser.find_element(By.ID, "wallet").text
    assert browser.find_element(By.ID, "plan-monthly").text == "$49.00"
    invoices = server.api.ok("GET", "/org/initech/billing", initech_token)["invoices"]
    assert [r.get_attribute("data-invoice") for r in browser.find_elements(By.CSS_SELECTOR, "#invoices tbody tr")] \
        == [i["id"] for i in invoices]

    screenshot(browser, out_dir, "org-desktop", 1280)
    assert console_errors(browser) == []


def test_an_org_token_marks_the_orgs_alert_read(server, browser, initech_token):
    before = server.api.ok("GET", "/org/initech/alerts?limit=20", initech_token)
    assert before["unread_count"] == 1, before
    browser.get(server.base + "/#token=" + quote(initech_token))
    button = wait(browser, "#alerts .mark-read")
    assert browser.find_element(By.ID, "unread-count").text == "1 unread"
    assert button.find_element(By.XPATH, "./ancestor::li").get_attribute("data-alert") == before["alerts"][0]["id"]
    button.send_keys(Keys.ENTER)
    WebDriverWait(browser, 20, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: d.find_element(By.ID, "unread-count").text == "0 unread")
    after = server.api.ok("GET", "/org/initech/alerts?limit=20", initech_token)
    assert after["unread_count"] == 0 and after["alerts"][0]["read"] is True
    li = browser.find_element(By.CSS_SELECTOR, f'#alerts li[data-alert="{before["alerts"][0]["id"]}"]')
    assert "read" in li.get_attribute("class").split() and not li.find_elements(By.CSS_SELECTOR, ".mark-read")
    assert console_errors(browser) == []


def test_an_org_token_is_refused_for_a_user_page_and_another_org(server, browser, initech_token):
    for method, path in [("GET", "/dashboard/ivan"), ("GET", "/org/acme/dashboard"),
                         ("GET", "/admin/users"), ("POST", "/tokens")]:
        status, body = server.api.call(method, path, initech_token, {} if method == "POST" else None)
        assert (status, body["error"]["code"]) == (403, "forbidden"), (method, path)
    browser.get(server.base + "/#token=" + quote(initech_token))
    wait(browser, "#limits li")
    browser.get(server.base + "/#/org/acme")
    error = wait(browser, "#error")
    assert "403" in error.text and "forbidden" in error.text and "initech" in error.text
    logged = console_errors(browser)
    assert logged and all("403" in e["message"] for e in logged), logged
