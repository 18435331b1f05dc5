/* meter web dashboard (SPEC §14, docs/web.md).
 *
 * Two ways in: an admin pastes an admin key (kept in sessionStorage, this tab only), or
 * an end user opens `/#token=<token>` minted by their application (the token is moved to
 * sessionStorage and out of the address bar). Views are routed by the hash:
 * `#/` the tenant (admin), `#/user/<id>` one user, `#/org/<id>` one organisation (an org's
 * link opens it). Every number comes from the API; money
 * is formatted from its exact strings by MeterFormat (format.js), never re-computed.
 * The DOM is built with createElement and textContent only (no HTML from data).
 */
(function () {
  "use strict";

  var API = "/api/subscription";
  var KEY_STORE = "meter.admin_key";
  var TOKEN_STORE = "meter.token";
  var USERS_PAGE = 100;
  var MAX_USER_PAGES = 10;
  // The tenant view's wallets: a page of GET /admin/wallets at a time (issue 19).
  var WALLETS_PAGE = 100;
  // The tenant view's orgs (SPEC §14): pages of GET /admin/orgs, up to 1,000 ranked; the
  // budgets panel reads GET /budgets?org_id= for the top BUDGET_ORGS of them.
  var ORGS_PAGE = 100;
  var MAX_ORG_PAGES = 10;
  var BUDGET_ORGS = 20;
  var F = window.MeterFormat;
  var locale = (navigator.languages && navigator.languages[0]) || navigator.language || "en-US";

  var auth = null; // {kind: "admin", key} | {kind: "token", token, user, org} (one of user, org)
  var chart = null;
  var renderSeq = 0;
  var navigated = false; // focus moves to the content on in-app navigation, not on load

  // ---------------------------------------------------------------------------------
  // DOM helpers

  function $(id) { return document.getElementById(id); }

  /** h("td", {class: "num", text: "1"}, child, …) */
  function h(tag, attrs) {
    var el = document.createElement(tag);
    var a = attrs || {};
    Object.keys(a).forEach(function (k) {
      var v = a[k];
      if (v === null || v === undefined || v === false) { return; }
      if (k === "text") { el.textContent = v; }
      else if (k === "class") { el.className = v; }
      else if (k === "on") { Object.keys(v).forEach(function (ev) { el.addEventListener(ev, v[ev]); }); }
      else if (k === "data") { Object.keys(v).forEach(function (d) { el.dataset[d] = v[d]; }); }
      else { el.setAttribute(k, v === true ? "" : String(v)); }
    });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) { continue; }
      if (Array.isArray(c)) { c.forEach(function (x) { if (x) { el.appendChild(x); } }); }
      else if (typeof c === "string") { el.appendChild(document.createTextNode(c)); }
      else { el.appendChild(c); }
    }
    return el;
  }

  function status(text, isError) {
    var s = $("status");
    s.textContent = text || "";
    s.className = "status" + (isError ? " error" : "");
  }

  function moneyEl(tag, value, attrs) {
    var a = attrs || {};
    a.data = Object.assign({ value: value }, a.data || {});
    a.text = F.money(value, locale);
    return h(tag, a);
  }

  function countEl(tag, value, attrs) {
    var a = attrs || {};
    a.data = Object.assign({ value: String(value) }, a.data || {});
    a.text = F.count(value, locale);
    return h(tag, a);
  }

  function when(iso) {
    var d = new Date(iso);
    return h("time", {
      datetime: iso,
      text: d.toLocaleString(locale, { dateStyle: "medium", timeStyle: "short" }),
    });
  }

  function day(iso) {
    return new Date(iso).toLocaleDateString(locale, { dateStyle: "medium", timeZone: "UTC" });
  }

  function tableWrap(table, label) {
    return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": label }, table);
  }

  function plural(n, word) {
    return F.count(n, locale) + " " + word + (n === 1 ? "" : "s");
  }

  function userLink(id) {
    return h("a", { href: "#/user/" + encodeURIComponent(id), class: "user-link", data: { user: id }, text: id });
  }

  // ---------------------------------------------------------------------------------
  // API

  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }

  function api(path, options) {
    var o = options || {};
    var headers = { Accept: "application/json" };
    if (auth) {
      headers.Authorization = "Bearer " + (auth.kind === "admin" ? auth.key : auth.token);
    }
    if (o.body !== undefined) { headers["Content-Type"] = "application/json"; }
    return fetch(API + path, {
      method: o.method || "GET",
      headers: headers,
      body: o.body === undefined ? undefined : JSON.stringify(o.body),
      credentials: "omit",
      cache: "no-store",
    }).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (body) {
        if (!res.ok || !body || body.success !== true) {
          var err = body && body.error ? body.error : {};
          throw new ApiError(res.status, err.code || "http_" + res.status, err.message || res.statusText);
        }
        return body.data;
      });
    });
  }

  function enc(id) { return encodeURIComponent(id); }

  // ---------------------------------------------------------------------------------
  // Sign-in and routing

  function tokenPayload(token) {
    // The payload is public (only the signature is secret): {t, u | o, k, iat, exp}.
    var payload = token.slice(3).split(".")[0].replace(/-/g, "+").replace(/_/g, "/");
    while (payload.length % 4) { payload += "="; }
    var bytes = Uint8Array.from(atob(payload), function (c) { return c.charCodeAt(0); });
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  /** The page a token opens: `#/user/<id>` for a user's, `#/org/<id>` for an org's. */
  function tokenHome(token) {
    var p = tokenPayload(token);
    if (p.o) { return "#/org/" + enc(p.o); }
    if (p.u) { return "#/user/" + enc(p.u); }
    throw new Error("no subject");
  }

  function loadAuth() {
    var hash = location.hash;
    if (hash.indexOf("#token=") === 0) {
      var token = decodeURIComponent(hash.slice("#token=".length));
      sessionStorage.setItem(TOKEN_STORE, token);
      sessionStorage.removeItem(KEY_STORE);
      var home = null;
      try { home = tokenHome(token); } catch (e) { home = null; }
      history.replaceState(null, "", location.pathname + (home || "#/"));
    }
    var stored = sessionStorage.getItem(TOKEN_STORE);
    if (stored) {
      try {
        var p = tokenPayload(stored);
        if (!p.u === !p.o) { throw new Error("no subject"); }
        auth = { kind: "token", token: stored, user: p.u, org: p.o, home: tokenHome(stored) };
      } catch (e) {
        sessionStorage.removeItem(TOKEN_STORE);
        status("This link is not a valid dashboard link.", true);
      }
      return;
    }
    var key = sessionStorage.getItem(KEY_STORE);
    auth = key ? { kind: "admin", key: key } : null;
  }

  function signOut() {
    sessionStorage.removeItem(KEY_STORE);
    sessionStorage.removeItem(TOKEN_STORE);
    auth = null;
    status("");
    history.replaceState(null, "", location.pathname + "#/");
    route();
  }

  function showSignIn() {
    $("sign-in").hidden = false;
    $("sign-out").hidden = true;
    $("who").textContent = "";
    clear();
    $("admin-key").focus();
  }

  function clear() {
    if (chart) { chart.destroy(); chart = null; }
    var v = $("view");
    while (v.firstChild) { v.removeChild(v.firstChild); }
    return v;
  }

  function route() {
    var hash = location.hash || "#/";
    if (hash.indexOf("#/") !== 0) { return; } // in-page anchors such as #main
    if (!auth) { showSignIn(); return; }
    $("sign-in").hidden = true;
    $("sign-out").hidden = false;
    $("who").textContent = auth.kind === "admin" ? "Admin"
      : auth.org ? "Signed in by link for organisation " + auth.org : "Signed in by link as " + auth.user;
    var m = /^#\/user\/(.+)$/.exec(hash);
    var o = /^#\/org\/(.+)$/.exec(hash);
    if (m) {
      renderUser(decodeURIComponent(m[1]));
    } else if (o) {
      renderOrg(decodeURIComponent(o[1]));
    } else if (auth.kind === "token") {
      location.hash = auth.home;
    } else {
      renderTenant();
    }
  }

  function failed(view, err) {
    var text = err instanceof ApiError
      ? err.status + " " + err.code + ": " + err.message
      : String(err && err.message ? err.message : err);
    if (err instanceof ApiError && err.status === 401) {
      text += auth && auth.kind === "token"
        ? " — this link has expired or is no longer valid; ask the application for a new one."
        : " — check the admin key.";
    } else if (err instanceof ApiError && err.status === 403 && auth && auth.kind === "token") {
      text += auth.org
        ? " — this link only opens organisation " + auth.org + "'s dashboard."
        : " — this link only opens " + auth.user + "'s dashboard.";
    }
    status("");
    view.appendChild(h("section", { class: "panel error", id: "error", role: "alert" },
      h("h1", { text: "Cannot show this page" }), h("p", { text: text })));
  }

  function start(title) {
    var seq = ++renderSeq;
    var view = clear();
    document.title = title + " · meter";
    status("Loading…");
    if (navigated) { $("main").focus(); }
    return { view: view, current: function () { return seq === renderSeq; } };
  }

  // ---------------------------------------------------------------------------------
  // The tenant (admin)

  function allUsers() {
    var users = [];
    function page(cursor, n) {
      var q = "?limit=" + USERS_PAGE + (cursor ? "&cursor=" + enc(cursor) : "");
      return api("/admin/users" + q).then(function (data) {
        users = users.concat(data.users);
        if (data.next_cursor && n + 1 < MAX_USER_PAGES) { return page(data.next_cursor, n + 1); }
        return { users: users, truncated: !!data.next_cursor };
      });
    }
    return page(null, 0);
  }

  function renderTenant() {
    var r = start("Tenant");
    Promise.all([allUsers(), api("/admin/alerts?limit=20"), api("/plans"),
      api("/admin/wallets?limit=" + WALLETS_PAGE), allOrgs()]).then(function (res) {
      var orgs = res[4].orgs.slice().sort(function (a, b) {
        return F.compare(b.cost_usd, a.cost_usd) || (a.org_id < b.org_id ? -1 : 1);
      });
      return orgBudgets(orgs.slice(0, BUDGET_ORGS)).then(function (budgets) {
        return res.concat([{ orgs: orgs, truncated: res[4].truncated }, budgets]);
      });
    }).then(function (res) {
      if (!r.current()) { return; }
      status("");
      var listed = res[0];
      var users = listed.users.slice().sort(function (a, b) {
        return F.compare(b.cost_usd, a.cost_usd) || (a.user_id < b.user_id ? -1 : 1);
      });
      r.view.appendChild(h("h1", { text: "This period" }));
      r.view.appendChild(openUserForm());
      r.view.appendChild(usersPanel(users, listed.truncated));
      r.view.appendChild(orgsPanel(res[5].orgs, res[5].truncated));
      r.view.appendChild(h("div", { class: "grid-2" },
        unpricedPanel(users), budgetsPanel(res[6], res[5].orgs.length)));
      r.view.appendChild(walletsPanel(res[3], r));
      r.view.appendChild(tenantAlertsPanel(res[1].alerts));
      r.view.appendChild(plansPanel(res[2].plans));
    }).catch(function (e) { if (r.current()) { failed(r.view, e); } });
  }

  function openUserForm() {
    var input = h("input", { id: "open-user", type: "text", autocomplete: "off", spellcheck: "false", required: true });
    return h("form", {
      class: "panel inline-form", id: "open-user-form",
      on: { submit: function (e) {
        e.preventDefault();
        if (input.value.trim()) { location.hash = "#/user/" + enc(input.value.trim()); }
      } },
    }, h("label", { for: "open-user", text: "Open a user" }), input, h("button", { type: "submit", text: "Open" }));
  }

  function usersPanel(users, truncated) {
    var total = "0";
    var calls = 0;
    var unpriced = 0;
    var body = h("tbody");
    users.forEach(function (u, i) {
      total = F.add(total, u.cost_usd);
      calls += u.calls;
      unpriced += u.unpriced_calls;
      var usage = h("td", {},
        h("span", { class: "badge " + u.usage_status, text: u.usage_status.replace("_", " ") }),
        u.max_usage_percentage === null ? null : " " + F.percent(u.max_usage_percentage, locale));
      body.appendChild(h("tr", { data: { user: u.user_id } },
        h("td", { class: "num", text: String(i + 1) }),
        h("td", {}, userLink(u.user_id)),
        h("td", { text: u.plan }),
        h("td", { text: u.subscription_status || "none (free)" }),
        countEl("td", u.calls, { class: "num calls" }),
        moneyEl("td", u.cost_usd, { class: "num cost" }),
        usage,
        countEl("td", u.unpriced_calls, { class: "num unpriced" }),
        countEl("td", u.unread_alerts, { class: "num unread" })));
    });
    var table = h("table", { id: "users" },
      h("caption", { text: "Users ranked by cost this period" }),
      h("thead", {}, h("tr", {},
        h("th", { class: "num", scope: "col", text: "#" }),
        h("th", { scope: "col", text: "User" }),
        h("th", { scope: "col", text: "Plan" }),
        h("th", { scope: "col", text: "Subscription" }),
        h("th", { class: "num", scope: "col", text: "Calls" }),
        h("th", { class: "num", scope: "col", text: "Cost" }),
        h("th", { scope: "col", text: "Usage" }),
        h("th", { class: "num", scope: "col", text: "Unpriced calls" }),
        h("th", { class: "num", scope: "col", text: "Unread alerts" }))),
      body,
      h("tfoot", {}, h("tr", {},
        h("td", {}),
        h("td", { text: "All " + F.count(users.length, locale) + " users" }),
        h("td", {}), h("td", {}),
        countEl("td", calls, { class: "num", id: "total-calls" }),
        moneyEl("td", total, { class: "num", id: "total-cost" }),
        h("td", {}),
        countEl("td", unpriced, { class: "num", id: "total-unpriced" }),
        h("td", {}))));
    return h("section", { class: "panel", "aria-labelledby": "users-title" },
      h("h2", { id: "users-title", text: "Users" }),
      users.length ? tableWrap(table, "Users") : h("p", { text: "No user has a subscription or usage yet." }),
      truncated ? h("p", { class: "hint", text: "Only the first " + USERS_PAGE * MAX_USER_PAGES +
        " users (by id) are ranked here; open others by id above." }) : null);
  }

  function unpricedPanel(users) {
    var rows = users.filter(function (u) { return u.unpriced_calls > 0; });
    return h("section", { class: "panel", id: "unpriced", "aria-labelledby": "unpriced-title" },
      h("h2", { id: "unpriced-title", text: "Unpriced usage" }),
      rows.length
        ? h("ul", {}, rows.map(function (u) {
          return h("li", {}, userLink(u.user_id), ": ", countEl("span", u.unpriced_calls, { class: "unpriced" }),
            " calls without a price in force (recorded; priced by the aggregation once a price exists)");
        }))
        : h("p", { text: "Every call this period was priced." }));
  }

  // The tenant's orgs (SPEC §14): GET /admin/orgs in pages (org-id order), ranked by
  // cost here, as the users are.
  function allOrgs() {
    var orgs = [];
    function page(cursor, n) {
      var q = "?limit=" + ORGS_PAGE + (cursor ? "&cursor=" + enc(cursor) : "");
      return api("/admin/orgs" + q).then(function (data) {
        orgs = orgs.concat(data.orgs);
        if (data.next_cursor && n + 1 < MAX_ORG_PAGES) { return page(data.next_cursor, n + 1); }
        return { orgs: orgs, truncated: !!data.next_cursor };
      });
    }
    return page(null, 0);
  }

  function orgsPanel(orgs, truncated) {
    var total = "0";
    var calls = 0;
    var body = h("tbody");
    orgs.forEach(function (o, i) {
      total = F.add(total, o.cost_usd);
      calls += o.calls;
      var usage = h("td", {},
        h("span", { class: "badge " + o.usage_status, text: o.usage_status.replace("_", " ") }),
        o.max_usage_percentage === null ? null : " " + F.percent(o.max_usage_percentage, locale));
      body.appendChild(h("tr", { data: { org: o.org_id } },
        h("td", { class: "num", text: String(i + 1) }),
        h("td", { class: "org", text: o.org_id }),
        h("td", { text: o.plan || "none" }),
        h("td", { text: o.subscription_status || "none" }),
        countEl("td", o.calls, { class: "num calls" }),
        moneyEl("td", o.cost_usd, { class: "num cost" }),
        usage,
        countEl("td", o.unpriced_calls, { class: "num unpriced" })));
    });
    var table = h("table", { id: "orgs-table" },
      h("caption", { text: "Organisations ranked by cost this period (their pooled usage)" }),
      h("thead", {}, h("tr", {},
        h("th", { class: "num", scope: "col", text: "#" }),
        h("th", { scope: "col", text: "Organisation" }),
        h("th", { scope: "col", text: "Plan" }),
        h("th", { scope: "col", text: "Subscription" }),
        h("th", { class: "num", scope: "col", text: "Calls" }),
        h("th", { class: "num", scope: "col", text: "Cost" }),
        h("th", { scope: "col", text: "Usage" }),
        h("th", { class: "num", scope: "col", text: "Unpriced calls" }))),
      body,
      h("tfoot", {}, h("tr", {},
        h("td", {}),
        h("td", { text: "All " + F.count(orgs.length, locale) + " organisations" }),
        h("td", {}), h("td", {}),
        countEl("td", calls, { class: "num", id: "orgs-total-calls" }),
        moneyEl("td", total, { class: "num", id: "orgs-total-cost" }),
        h("td", {}), h("td", {}))));
    return h("section", { class: "panel", id: "orgs", "aria-labelledby": "orgs-title" },
      h("h2", { id: "orgs-title", text: "Organisations" }),
      orgs.length ? tableWrap(table, "Organisations")
        : h("p", { text: "No organisation has a subscription or usage this period." }),
      truncated ? h("p", { class: "hint", text: "Only the first " + ORGS_PAGE * MAX_ORG_PAGES +
        " organisations (by id) are ranked here." }) : null);
  }

  // The budgets of the top-ranked orgs: GET /budgets lists one scope's budgets (at most
  // 32), so this reads one list per org shown (at most BUDGET_ORGS requests).
  function orgBudgets(orgs) {
    return Promise.all(orgs.map(function (o) {
      return api("/budgets?org_id=" + enc(o.org_id)).then(function (list) { return list.budgets; });
    })).then(function (lists) {
      return lists.reduce(function (all, l) { return all.concat(l); }, []);
    });
  }

  function scopeText(scope) {
    if (scope.kind === "user") { return "user " + scope.user_id; }
    if (scope.kind === "org") { return "org " + scope.org_id; }
    return "team " + scope.org_id + "/" + scope.team_id;
  }

  function budgetsPanel(budgets, orgCount) {
    var body = h("tbody");
    budgets.forEach(function (b) {
      body.appendChild(h("tr", { data: { budget: b.budget_id } },
        h("td", { class: "budget-id", text: b.budget_id }),
        h("td", { class: "scope", text: scopeText(b.scope) + (b.applies_to === "each_member" ? " (each member)" : "") }),
        h("td", { class: "limits", text: limitsText(b.limits) }),
        h("td", { class: "window", text: b.window }),
        h("td", { class: "mode", text: b.mode })));
    });
    var table = h("table", { id: "budgets" },
      h("caption", { text: "Budgets of the organisations shown" }),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col", text: "Budget" }),
        h("th", { scope: "col", text: "Scope" }),
        h("th", { scope: "col", text: "Limits" }),
        h("th", { scope: "col", text: "Window" }),
        h("th", { scope: "col", text: "Mode" }))),
      body);
    return h("section", { class: "panel", id: "budgets-panel", "aria-labelledby": "budgets-title" },
      h("h2", { id: "budgets-title", text: "Budgets" }),
      budgets.length ? tableWrap(table, "Budgets") : h("p", { text: "No organisation shown has a budget." }),
      h("p", { class: "hint", text: "The budgets on the " + (orgCount > BUDGET_ORGS ? BUDGET_ORGS + " costliest " : "") +
        "organisations listed above (a user's or a team's budgets: GET /budgets with its scope)." }));
  }

  // The tenant's wallets (issue 19): those that hold or held grants, a page at a time in
  // key order (orgs, then users); balance, held, available, the low-balance level and flag.
  function walletRow(w) {
    var who = w.subscriber.kind === "user"
      ? h("td", {}, userLink(w.subscriber.id))
      : h("td", { class: "org", text: "org " + w.subscriber.id });
    var state = w.depleted ? "depleted" : (w.low_balance ? "low" : "ok");
    return h("tr", { data: { wallet: w.subscriber.kind + "/" + w.subscriber.id, state: state } },
      who,
      moneyEl("td", w.balance_usd, { class: "num balance" }),
      moneyEl("td", w.held_usd, { class: "num held" }),
      moneyEl("td", w.available_usd, { class: "num available" }),
      w.low_balance_usd === null
        ? h("td", { class: "num low-level", text: "—" })
        : moneyEl("td", w.low_balance_usd, { class: "num low-level" }),
      h("td", { class: "wallet-state" },
        h("span", { class: "badge " + (state === "ok" ? "active" : state === "low" ? "warning" : "error"),
          text: state === "ok" ? "ok" : state === "low" ? "low balance" : "depleted" })));
  }

  function walletsPanel(page, r) {
    var body = h("tbody");
    page.wallets.forEach(function (w) { body.appendChild(walletRow(w)); });
    var more = h("button", { type: "button", id: "more-wallets", text: "Show more wallets" });
    var cursor = page.next_cursor;
    more.hidden = !cursor;
    more.addEventListener("click", function () {
      more.disabled = true;
      api("/admin/wallets?limit=" + WALLETS_PAGE + "&cursor=" + enc(cursor)).then(function (next) {
        if (!r.current()) { return; }
        next.wallets.forEach(function (w) { body.appendChild(walletRow(w)); });
        cursor = next.next_cursor;
        more.hidden = !cursor;
        more.disabled = false;
      }).catch(function (e) { more.disabled = false; status(e.message || String(e), true); });
    });
    return h("section", { class: "panel", id: "wallets", "aria-labelledby": "wallets-title" },
      h("h2", { id: "wallets-title", text: "Wallets" }),
      page.wallets.length
        ? tableWrap(h("table", { id: "tenant-wallets" },
          h("thead", {}, h("tr", {},
            h("th", { scope: "col", text: "Wallet of" }),
            h("th", { class: "num", scope: "col", text: "Balance" }),
            h("th", { class: "num", scope: "col", text: "Held" }),
            h("th", { class: "num", scope: "col", text: "Available" }),
            h("th", { class: "num", scope: "col", text: "Low-balance level" }),
            h("th", { scope: "col", text: "State" }))), body), "Wallets")
        : h("p", { text: "No wallet holds credit yet." }),
      more);
  }

  function tenantAlertsPanel(alerts) {
    var body = h("tbody");
    alerts.forEach(function (a) {
      body.appendChild(h("tr", { data: { alert: a.id } },
        h("td", {}, when(a.created_at)),
        // An org's alert (a budget on the org's or a team's pooled usage) has no user.
        a.org_id ? h("td", { class: "org", text: "org " + a.org_id }) : h("td", {}, userLink(a.user_id)),
        h("td", {}, h("span", { class: "badge " + a.severity, text: a.severity })),
        h("td", { text: a.title }),
        h("td", { text: a.read ? "read" : "unread" })));
    });
    return h("section", { class: "panel", "aria-labelledby": "tenant-alerts-title" },
      h("h2", { id: "tenant-alerts-title", text: "Latest alerts" }),
      alerts.length
        ? tableWrap(h("table", { id: "tenant-alerts" },
          h("thead", {}, h("tr", {},
            h("th", { scope: "col", text: "When" }), h("th", { scope: "col", text: "Owner" }),
            h("th", { scope: "col", text: "Severity" }), h("th", { scope: "col", text: "Alert" }),
            h("th", { scope: "col", text: "State" }))), body), "Latest alerts")
        : h("p", { text: "No alerts yet." }));
  }

  function limitsText(limits) {
    var keys = Object.keys(limits);
    if (!keys.length) { return "no limits"; }
    return keys.map(function (m) {
      var v = limits[m];
      return m + " " + (m === "cost_usd" ? F.money(v, locale) : F.count(v, locale));
    }).join(", ");
  }

  function plansPanel(plans) {
    var body = h("tbody");
    plans.forEach(function (p) {
      body.appendChild(h("tr", { data: { plan: p.name } },
        h("td", { text: p.name }),
        h("td", { text: p.tier }),
        moneyEl("td", p.monthly_price_usd, { class: "num" }),
        moneyEl("td", p.yearly_price_usd, { class: "num" }),
        h("td", {}, h("details", {}, h("summary", { text: plural(Object.keys(p.limits).length, "limit") }),
          h("p", { text: limitsText(p.limits) })))));
    });
    return h("section", { class: "panel", "aria-labelledby": "plans-title" },
      h("h2", { id: "plans-title", text: "Plans" }),
      tableWrap(h("table", { id: "plans" },
        h("thead", {}, h("tr", {},
          h("th", { scope: "col", text: "Plan" }), h("th", { scope: "col", text: "Tier" }),
          h("th", { class: "num", scope: "col", text: "Monthly" }),
          h("th", { class: "num", scope: "col", text: "Yearly" }),
          h("th", { scope: "col", text: "Limits" }))), body), "Plans"));
  }

  // ---------------------------------------------------------------------------------
  // One user

  function renderUser(user) {
    var r = start(user);
    var months = Number(sessionStorage.getItem("meter.months") || 6);
    var u = enc(user);
    Promise.all([
      api("/dashboard/" + u),
      api("/usage/" + u + "/trends?months=" + months),
      api("/alerts/" + u + "?limit=20"),
      api("/billing/" + u),
      api("/user/" + u + "/subscription"),
    ]).then(function (res) {
      // The user's wallet (issue 19, §14): shown for a prepaid plan, and for a postpaid
      // one when it holds or held grants (credit that reduces the invoices).
      return api("/wallet/user/" + u).then(function (w) {
        var d0 = res[0];
        var prepaid = !!(d0.wallet && d0.wallet.payment === "prepaid");
        if (prepaid || w.grants.length) { w.prepaid = prepaid; res.push(w); }
        return res;
      });
    }).then(function (res) {
      if (!r.current()) { return; }
      status("");
      var d = res[0];
      var s = res[4];
      r.view.appendChild(h("h1", { id: "user-title" }, "User ", h("span", { id: "user-id", text: user })));
      r.view.appendChild(summary(d, s));
      var rec = recommendation(d.recommendations);
      if (rec) { r.view.appendChild(rec); }
      if (res[5]) { r.view.appendChild(walletPanel(res[5])); }
      r.view.appendChild(limitsPanel(d));
      r.view.appendChild(trendsPanel(user, res[1], months, r));
      r.view.appendChild(h("div", { class: "grid-2" },
        alertsPanel(user, res[2]), invoicesPanel(res[3].invoices)));
      r.view.appendChild(planPanel(s));
      drawChart(res[1]);
    }).catch(function (e) { if (r.current()) { failed(r.view, e); } });
  }

  function card(label, valueEl, sub, id) {
    return h("div", { class: "card", id: id },
      h("div", { class: "label", text: label }), valueEl, sub ? h("div", { class: "sub", text: sub }) : null);
  }

  function summary(d, s) {
    var sm = d.summary;
    var cu = d.current_usage;
    var pr = d.projections;
    // The period's end is exclusive: show its last day.
    var last = new Date(Date.parse(sm.period.end) - 1000).toISOString();
    var period = day(sm.period.start) + " – " + day(last);
    return h("section", { class: "cards", id: "summary", "aria-label": "Summary" },
      card("Plan", h("div", { class: "value", id: "plan-name", text: sm.plan }),
        "subscription " + (s.subscription ? sm.subscription_status : "none (free plan)") +
        (sm.pending_plan ? "; " + sm.pending_plan + " from next period" : "")),
      card("Period", h("div", { class: "value", text: sm.period.name }),
        period + " · " + plural(sm.days_remaining, "day") + " left"),
      card("Cost so far", moneyEl("div", cu.total_cost, { class: "value", id: "period-cost" }),
        null, "card-cost"),
      card("Projected cost",
        pr.projected_monthly_cost === null
          ? h("div", { class: "value", id: "projected-cost", text: "—" })
          : h("div", {
            class: "value", id: "projected-cost", title: F.money(pr.projected_monthly_cost, locale),
            data: { value: pr.projected_monthly_cost },
            // An estimate: shown to the cent (rounded on its digits, half away from zero).
            text: "≈ " + F.money(F.round(pr.projected_monthly_cost, 2), locale),
          }),
        (pr.cost_cap === null ? "no cost cap" : "cap " + F.money(pr.cost_cap, locale)) +
        (pr.projected_usage_percentage === null ? "" : " · " + F.percent(pr.projected_usage_percentage, locale) + " of it")),
      card("Calls", countEl("div", cu.total_calls, { class: "value", id: "period-calls" }),
        F.count(cu.total_tokens, locale) + " tokens"),
      card("Usage", h("div", { class: "value" },
        h("span", { class: "badge " + sm.usage_status, id: "usage-status", text: sm.usage_status.replace("_", " ") })),
        F.count(cu.unpriced_calls, locale) + " unpriced calls"));
  }

  function recommendation(recs) {
    if (!recs || !recs.length) { return null; }
    var r = recs[0];
    return h("section", { class: "banner", id: "recommendation", role: "note" },
      h("strong", { text: r.kind === "upgrade" ? "Upgrade to " + r.plan + " recommended" : "No plan holds this usage" }),
      h("span", { text: r.reason }));
  }

  function used(metric, cu) {
    var m = /^(calls|tokens):(.+)$/.exec(metric);
    if (metric === "cost_usd") { return { text: cu.total_cost, money: true }; }
    if (!m) { return null; }
    var field = m[1];
    if (m[2] === "*") { return { text: String(field === "calls" ? cu.total_calls : cu.total_tokens) }; }
    var p = cu.provider_breakdown[m[2]];
    return { text: String(p ? p[field] : 0) };
  }

  function metricName(metric) {
    if (metric === "cost_usd") { return "Cost"; }
    var m = /^(calls|tokens):(.+)$/.exec(metric);
    if (!m) { return metric; }
    return (m[2] === "*" ? "All providers" : m[2]) + " " + m[1];
  }

  function level(pct) {
    return pct >= 100 ? "over" : pct >= 90 ? "high" : pct >= 80 ? "warn" : "ok";
  }

  function limitsPanel(d) {
    var limits = d.limits.limits;
    var list = h("ul", { class: "limits", id: "limits" });
    Object.keys(limits).forEach(function (metric) {
      var limit = limits[metric];
      var pct = d.usage_percentages[metric];
      var u = used(metric, d.current_usage) || { text: "0" };
      var isMoney = metric === "cost_usd";
      var usedText = isMoney ? F.money(u.text, locale) : F.count(u.text, locale);
      var limitText = isMoney ? F.money(limit, locale) : F.count(limit, locale);
      // A limit of 0 means none allowed (not unlimited).
      var none = String(limit) === "0" && F.compare(u.text, "0") === 0;
      var fill = h("div", { class: "bar-fill level-" + level(pct) });
      fill.style.width = Math.min(100, Math.max(0, pct)) + "%";
      var name = metricName(metric);
      list.appendChild(h("li", { data: { metric: metric, percentage: String(pct), used: u.text, limit: String(limit) } },
        h("div", { class: "limit-head" },
          h("span", { class: "limit-name", text: name }),
          none
            ? h("span", { class: "limit-figures" }, "not included (limit ",
              h("span", { class: "limit", text: limitText }), ") · ",
              h("span", { class: "used", text: usedText }), " used · ",
              h("span", { class: "pct", text: F.percent(pct, locale) }))
            : h("span", { class: "limit-figures" },
              h("span", { class: "used", text: usedText }), " of ",
              h("span", { class: "limit", text: limitText }), " · ",
              h("span", { class: "pct", text: F.percent(pct, locale) }))),
        h("div", {
          class: "bar", role: "progressbar", "aria-label": name, "aria-valuemin": "0",
          "aria-valuemax": "100", "aria-valuenow": String(Math.min(100, pct)),
          "aria-valuetext": F.percent(pct, locale),
        }, fill)));
    });
    return h("section", { class: "panel", "aria-labelledby": "limits-title" },
      h("h2", { id: "limits-title", text: "Limits this period" }),
      Object.keys(limits).length ? list : h("p", { text: "This plan has no limits." }));
  }

  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

  function trendsPanel(user, t, months, r) {
    var metricSel = h("select", { id: "trend-metric" },
      ["cost", "calls", "tokens"].map(function (m) {
        return h("option", { value: m, text: m, selected: m === (sessionStorage.getItem("meter.trend") || "cost") });
      }));
    var monthsSel = h("select", { id: "trend-months" },
      [6, 12, 24].map(function (n) { return h("option", { value: String(n), text: n + " months", selected: n === months }); }));
    monthsSel.addEventListener("change", function () {
      sessionStorage.setItem("meter.months", monthsSel.value);
      api("/usage/" + enc(user) + "/trends?months=" + monthsSel.value).then(function (fresh) {
        if (!r.current()) { return; }
        var panel = $("trends");
        panel.parentNode.replaceChild(trendsPanel(user, fresh, Number(monthsSel.value), r), panel);
        drawChart(fresh);
        $("trend-months").focus();
      }).catch(function (e) { status(e.message || String(e), true); });
    });
    metricSel.addEventListener("change", function () {
      sessionStorage.setItem("meter.trend", metricSel.value);
      drawChart(t);
    });
    var body = h("tbody");
    t.periods.forEach(function (p, i) {
      body.appendChild(h("tr", {},
        h("th", { scope: "row", text: p }),
        countEl("td", t.total_calls[i], { class: "num" }),
        countEl("td", t.total_tokens[i], { class: "num" }),
        moneyEl("td", t.total_cost[i], { class: "num" })));
    });
    return h("section", { class: "panel", id: "trends", "aria-labelledby": "trends-title" },
      h("h2", { id: "trends-title", text: "Trends by provider" }),
      h("div", { class: "chart-controls" },
        h("span", {}, h("label", { for: "trend-metric", text: "Show" }), metricSel),
        h("span", {}, h("label", { for: "trend-months", text: "over" }), monthsSel)),
      h("div", { class: "chart", id: "trend-chart", role: "img", "aria-label": "Trend chart; the table below has the same numbers" }),
      h("details", {}, h("summary", { text: "Totals per period" }),
        tableWrap(h("table", { id: "trend-table" },
          h("thead", {}, h("tr", {},
            h("th", { scope: "col", text: "Period" }), h("th", { class: "num", scope: "col", text: "Calls" }),
            h("th", { class: "num", scope: "col", text: "Tokens" }), h("th", { class: "num", scope: "col", text: "Cost" }))),
          body), "Totals per period")));
  }

  function drawChart(t) {
    var el = $("trend-chart");
    if (!el || typeof uPlot === "undefined") { return; }
    if (chart) { chart.destroy(); chart = null; }
    var metric = ($("trend-metric") || {}).value || "cost";
    var periods = t.periods;
    var xs = periods.map(function (_, i) { return i; });
    var providers = Object.keys(t.provider_trends).filter(function (p) {
      return t.provider_trends[p][metric].some(function (v) { return String(v) !== "0"; });
    });
    if (!providers.length) { providers = Object.keys(t.provider_trends).slice(0, 1); }
    var exact = providers.map(function (p) { return t.provider_trends[p][metric]; });
    // Axis ticks are positions chosen by the chart (floats), labelled approximately.
    var axisFormat = new Intl.NumberFormat(locale, metric === "cost"
      ? { style: "currency", currency: "USD", maximumSignificantDigits: 3 }
      : { notation: "compact", maximumSignificantDigits: 3 });
    var axisLabel = function (v) { return axisFormat.format(v); };
    var show = function (v) {
      return metric === "cost" ? F.money(String(v), locale) : F.count(v, locale);
    };
    var opts = {
      width: Math.max(280, el.clientWidth),
      height: 260,
      scales: { x: { time: false } },
      legend: { live: true },
      axes: [
        { splits: function (u) {
          // One tick per period while they fit (about 70 px each), else every k-th.
          var step = Math.ceil(xs.length / Math.max(2, Math.floor(u.width / 70)));
          return xs.filter(function (i) { return (xs.length - 1 - i) % step === 0; });
        }, values: function (u, splits) {
          return splits.map(function (i) { return periods[i] ? periods[i].slice(0, 7) : ""; });
        } },
        { size: 80, values: function (u, splits) { return splits.map(axisLabel); } },
      ],
      series: [{ label: "Period", value: function (u, i) { return i === null ? "—" : periods[i]; } }].concat(
        providers.map(function (p, si) {
          return {
            label: p,
            stroke: PALETTE[si % PALETTE.length],
            width: 2,
            points: { show: true, size: 6 },
            // The legend shows the API's exact value, not the plotted float.
            value: function (u, v, s, i) { return i === null || i === undefined ? "—" : show(exact[si][i]); },
          };
        })),
    };
    // Only the plot positions are floats; every number shown is the API's string.
    var data = [xs].concat(exact.map(function (series) {
      return series.map(function (v) { return Number(v); });
    }));
    chart = new uPlot(opts, data, el);
    el.uplot = chart;
    el.dataset.points = String(xs.length);
    el.dataset.series = providers.join(",");
  }

  window.addEventListener("resize", function () {
    var el = $("trend-chart");
    if (chart && el) { chart.setSize({ width: Math.max(280, el.clientWidth), height: 260 }); }
  });

  // `path`: where the list is read again after a mark-read (default: the user's alerts).
  function alertsPanel(user, a, path) {
    var reload = path || "/alerts/" + enc(user) + "?limit=20";
    var list = h("ul", { class: "alerts", id: "alerts" });
    var count = h("span", { class: "badge unread", id: "unread-count", text: F.count(a.unread_count, locale) + " unread" });
    a.alerts.forEach(function (al) {
      var item = h("li", { class: al.read ? "read" : "unread", data: { alert: al.id } },
        h("span", { class: "badge " + al.severity, text: al.severity }),
        h("div", { class: "text" },
          h("div", { class: "title", text: al.title }),
          h("div", { text: al.message }),
          when(al.created_at)));
      if (!al.read) {
        var button = h("button", { type: "button", class: "quiet mark-read", text: "Mark read", "aria-label": "Mark read: " + al.title });
        button.addEventListener("click", function () {
          button.disabled = true;
          api("/alerts/" + enc(al.id) + "/mark-read", { method: "POST" }).then(function () {
            return api(reload);
          }).then(function (fresh) {
            var panel = $("alerts-panel");
            var next = alertsPanel(user, fresh, path);
            panel.parentNode.replaceChild(next, panel);
            status("Marked read.");
            var first = next.querySelector(".mark-read") || next.querySelector("h2");
            if (first) { first.focus(); }
          }).catch(function (e) {
            button.disabled = false;
            status((e.code || "") + " " + (e.message || String(e)), true);
          });
        });
        item.appendChild(button);
      }
      list.appendChild(item);
    });
    return h("section", { class: "panel", id: "alerts-panel", "aria-labelledby": "alerts-title" },
      h("h2", { id: "alerts-title", tabindex: "-1" }, "Alerts ", count),
      a.alerts.length ? list : h("p", { text: "No alerts." }));
  }

  // Prepaid credit (issue 19): balance, held by open reservations, available, and the
  // grants in the order they burn (then the expired and voided ones), with their expiry.
  function walletPanel(w) {
    var body = h("tbody");
    w.grants.forEach(function (g) {
      body.appendChild(h("tr", { data: { grant: g.grant_id, status: g.status } },
        h("td", { text: g.grant_id }),
        h("td", { text: g.kind }),
        moneyEl("td", g.amount_usd, { class: "num amount" }),
        moneyEl("td", g.remaining_usd, { class: "num remaining" }),
        h("td", { class: "expires" }, g.expires_at ? when(g.expires_at) : "never"),
        h("td", { class: "grant-status", text: g.status +
          (g.expired_usd !== null && g.expired_usd !== undefined ? " (" + F.money(g.expired_usd, locale) + " expired)" : "") })));
    });
    return h("section", { class: "panel", id: "wallet", "aria-labelledby": "wallet-title" },
      h("h2", { id: "wallet-title", text: w.prepaid === false ? "Credit" : "Prepaid credit" }),
      h("div", { class: "cards" },
        card("Balance", moneyEl("div", w.balance_usd, { class: "value", id: "wallet-balance" })),
        card("Held", moneyEl("div", w.held_usd, { class: "value", id: "wallet-held" }),
          "by open reservations"),
        card("Available", moneyEl("div", w.available_usd, { class: "value", id: "wallet-available" }),
          w.projected_depletion_at ? "runs out about " + day(w.projected_depletion_at) : null)),
      w.grants.length
        ? tableWrap(h("table", { id: "wallet-grants" },
          h("thead", {}, h("tr", {},
            h("th", { scope: "col", text: "Grant" }), h("th", { scope: "col", text: "Kind" }),
            h("th", { class: "num", scope: "col", text: "Amount" }),
            h("th", { class: "num", scope: "col", text: "Remaining" }),
            h("th", { scope: "col", text: "Expires" }), h("th", { scope: "col", text: "Status" }))), body), "Grants")
        : h("p", { text: "No credit granted yet." }));
  }

  // What an invoice states beside its lines (docs/billing.md, `extra`): the exact total
  // and how it was rounded, and the calls not billed yet for want of a price.
  function invoiceStatements(extra) {
    var out = [];
    if (extra.exact_total_usd) {
      out.push(h("p", { class: "rounding" }, "Exact total ", moneyEl("span", extra.exact_total_usd),
        extra.rounding ? " (" + extra.rounding + ")" : ""));
    }
    if (extra.unpriced_calls) {
      out.push(h("p", { class: "unpriced",
        text: plural(Number(extra.unpriced_calls), "call") + " without a price yet: billed once priced" }));
    }
    return out;
  }

  function invoicesPanel(invoices) {
    var body = h("tbody");
    invoices.forEach(function (inv) {
      body.appendChild(h("tr", { data: { invoice: inv.id } },
        h("td", { text: inv.period.name }),
        h("td", { text: inv.plan }),
        moneyEl("td", inv.total_usd, { class: "num total" }),
        h("td", { text: inv.status }),
        h("td", {}, h("details", {}, h("summary", { text: plural(inv.line_items.length, "line") }),
          h("ul", {}, inv.line_items.map(function (l) {
            return h("li", {}, l.description + ": ", moneyEl("span", l.amount_usd));
          })),
          invoiceStatements(inv.extra || {})))));
    });
    return h("section", { class: "panel", "aria-labelledby": "invoices-title" },
      h("h2", { id: "invoices-title", text: "Invoices" }),
      invoices.length
        ? tableWrap(h("table", { id: "invoices" },
          h("thead", {}, h("tr", {},
            h("th", { scope: "col", text: "Period" }), h("th", { scope: "col", text: "Plan" }),
            h("th", { class: "num", scope: "col", text: "Total" }), h("th", { scope: "col", text: "Status" }),
            h("th", { scope: "col", text: "Lines" }))), body), "Invoices")
        : h("p", { text: "No invoices yet: the first one comes when this period closes." }));
  }

  function planPanel(s) {
    var p = s.plan;
    return h("section", { class: "panel", id: "plan", "aria-labelledby": "plan-title" },
      h("h2", { id: "plan-title", text: "Plan: " + p.name }),
      h("p", {}, moneyEl("span", p.monthly_price_usd, { id: "plan-monthly" }), " a month or ",
        moneyEl("span", p.yearly_price_usd), " a year. " + (p.description || "")),
      p.features && p.features.length
        ? h("ul", { class: "features" }, p.features.map(function (f) { return h("li", { text: f }); }))
        : null);
  }

  // ---------------------------------------------------------------------------------
  // One organisation (SPEC §10, §14): what an org's link opens — its plan and every limit
  // as a progress bar over the pooled usage, the period's cost and projection, usage by
  // provider, its members' and teams' usage, its alerts, invoices and wallet.

  function renderOrg(org) {
    var r = start("Organisation " + org);
    var o = "/org/" + enc(org);
    var alertsPath = o + "/alerts?limit=20";
    Promise.all([
      api(o + "/dashboard"),
      api(o + "/subscription"),
      api(alertsPath),
      api(o + "/billing"),
      api(o + "/members?limit=100"),
      api("/wallet/org/" + enc(org)),
    ]).then(function (res) {
      if (!r.current()) { return; }
      status("");
      var d = res[0];
      var s = res[1];
      var u = d.usage;
      r.view.appendChild(h("h1", { id: "org-title" }, "Organisation ", h("span", { id: "org-id", text: org })));
      r.view.appendChild(orgSummary(d, s));
      // The user page's limits panel reads a dashboard's shape; the org's usage has the
      // same figures (total_*, provider_breakdown) under other names.
      r.view.appendChild(limitsPanel({
        limits: { limits: u.limits }, usage_percentages: u.usage_percentages, current_usage: u,
      }));
      r.view.appendChild(orgProvidersPanel(u));
      r.view.appendChild(orgMembersPanel(res[4]));
      r.view.appendChild(h("div", { class: "grid-2" },
        alertsPanel(org, res[2], alertsPath), invoicesPanel(res[3].invoices)));
      r.view.appendChild(walletPanel(res[5]));
      if (s.plan) { r.view.appendChild(planPanel(s)); }
    }).catch(function (e) { if (r.current()) { failed(r.view, e); } });
  }

  function orgSummary(d, s) {
    var u = d.usage;
    var last = new Date(Date.parse(u.period.end) - 1000).toISOString();
    var period = day(u.period.start) + " – " + day(last);
    return h("section", { class: "cards", id: "summary", "aria-label": "Summary" },
      card("Plan", h("div", { class: "value", id: "plan-name", text: u.plan || "none" }),
        "subscription " + (s.subscription ? s.status : "none") +
        (s.pending_plan ? "; " + s.pending_plan + " from next period" : "")),
      card("Period", h("div", { class: "value", text: u.period.name }), period),
      card("Cost so far", moneyEl("div", u.total_cost, { class: "value", id: "period-cost" }),
        null, "card-cost"),
      card("Projected cost",
        d.projected_cost === null
          ? h("div", { class: "value", id: "projected-cost", text: "—" })
          : h("div", {
            class: "value", id: "projected-cost", title: F.money(d.projected_cost, locale),
            data: { value: d.projected_cost },
            text: "≈ " + F.money(F.round(d.projected_cost, 2), locale),
          }),
        "at this period's pace"),
      card("Calls", countEl("div", u.total_calls, { class: "value", id: "period-calls" }),
        F.count(u.total_tokens, locale) + " tokens"),
      card("Members", countEl("div", d.total_users, { class: "value", id: "org-members-count" }),
        plural(d.invoices, "invoice")),
      card("Usage", h("div", { class: "value" },
        h("span", { class: "badge " + u.usage_status, id: "usage-status", text: u.usage_status.replace("_", " ") }))));
  }

  function orgProvidersPanel(u) {
    var body = h("tbody");
    Object.keys(u.provider_breakdown).forEach(function (p) {
      var b = u.provider_breakdown[p];
      body.appendChild(h("tr", { data: { provider: p } },
        h("th", { scope: "row", text: p }),
        countEl("td", b.calls, { class: "num calls" }),
        countEl("td", b.tokens, { class: "num tokens" }),
        moneyEl("td", b.cost, { class: "num cost" })));
    });
    return h("section", { class: "panel", id: "org-providers", "aria-labelledby": "org-providers-title" },
      h("h2", { id: "org-providers-title", text: "By provider this period" }),
      Object.keys(u.provider_breakdown).length
        ? tableWrap(h("table", { id: "org-provider-table" },
          h("thead", {}, h("tr", {},
            h("th", { scope: "col", text: "Provider" }), h("th", { class: "num", scope: "col", text: "Calls" }),
            h("th", { class: "num", scope: "col", text: "Tokens" }), h("th", { class: "num", scope: "col", text: "Cost" }))),
          body), "By provider")
        : h("p", { text: "No usage this period." }));
  }

  function memberTable(id, label, rows, key) {
    var body = h("tbody");
    rows.forEach(function (m) {
      var data = {};
      data[key] = m[key + "_id"];
      body.appendChild(h("tr", { data: data },
        h("th", { scope: "row", text: m[key + "_id"] }),
        countEl("td", m.calls, { class: "num calls" }),
        countEl("td", m.tokens, { class: "num tokens" }),
        moneyEl("td", m.cost_usd, { class: "num cost" })));
    });
    return tableWrap(h("table", { id: id },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col", text: label }), h("th", { class: "num", scope: "col", text: "Calls" }),
        h("th", { class: "num", scope: "col", text: "Tokens" }), h("th", { class: "num", scope: "col", text: "Cost" }))),
      body), label);
  }

  function orgMembersPanel(m) {
    return h("section", { class: "panel", id: "org-members", "aria-labelledby": "org-members-title" },
      h("h2", { id: "org-members-title", text: "Members this period" }),
      m.users.length ? memberTable("org-users", "User", m.users, "user") : h("p", { text: "No member has used it this period." }),
      m.next_cursor ? h("p", { text: "The " + plural(m.users.length, "user") + " with the largest cost of " + F.count(m.total_users, locale) + "." }) : null,
      h("h3", { text: "Teams" }),
      m.teams.length ? memberTable("org-teams", "Team", m.teams, "team") : h("p", { text: "No team has used it this period." }));
  }

  // ---------------------------------------------------------------------------------
  // Start

  function init() {
    $("sign-in-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var key = $("admin-key").value.trim();
      if (!key) { return; }
      sessionStorage.setItem(KEY_STORE, key);
      sessionStorage.removeItem(TOKEN_STORE);
      $("admin-key").value = "";
      auth = { kind: "admin", key: key };
      status("");
      if (location.hash === "#/" || !location.hash) { route(); } else { location.hash = "#/"; }
    });
    $("sign-out").addEventListener("click", signOut);
    $("skip").addEventListener("click", function (e) {
      e.preventDefault();
      $("main").focus();
    });
    window.addEventListener("hashchange", function () {
      navigated = true;
      if (location.hash.indexOf("#token=") === 0) { loadAuth(); }
      route();
    });
    loadAuth();
    route();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
