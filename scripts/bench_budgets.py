"""The two budgets of the `check-budgets` load (scripts/bench, scripts/profile-serve).

    python3 scripts/bench_budgets.py <host:port> <admin key>

Puts two hard budgets on org `bench-org` that no load reaches (10^12 calls a day, $10^9 a
month), so that every check naming the org decides over the plan and both budgets.
"""
import json
import sys
import urllib.request

BUDGETS = (
    ("bench-day", {"calls:*": 10**12}, "day"),
    ("bench-month", {"cost_usd": "1000000000"}, "month"),
)

addr, admin_key = sys.argv[1], sys.argv[2]
for bid, limits, window in BUDGETS:
    body = json.dumps({"scope": {"kind": "org", "org_id": "bench-org"}, "limits": limits,
                       "window": window, "mode": "hard"}).encode()
    req = urllib.request.Request(f"http://{addr}/api/subscription/budgets/{bid}", data=body, method="PUT",
                                 headers={"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
