"""Compare meter's quotes with LiteLLM's generic_cost_per_token (see litellm-crosscheck)."""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from decimal import Decimal

import litellm
from litellm.litellm_core_utils.llm_cost_calc.utils import generic_cost_per_token
from litellm.types.utils import Usage

TOKEN_KEYS = ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
              "cache_creation_input_token_cost")
THRESHOLD = re.compile(r"^(?:%s)_above_(\d+)(k?)_tokens$" % "|".join(TOKEN_KEYS))
AT = "2026-01-01T00:00:00Z"


def price_map_path():
    return os.path.join(os.path.dirname(litellm.__file__), "model_prices_and_context_window_backup.json")


def thresholds(entry):
    out = set()
    for key, value in entry.items():
        m = THRESHOLD.match(key)
        if m and value is not None:
            out.add(int(m.group(1)) * (1000 if m.group(2) else 1))
    for tier in entry.get("tiered_pricing") or []:
        for bound in tier.get("range") or []:
            out.add(int(bound))
    return sorted(out)


def candidate_models(price_map):
    keys = []
    for key, entry in price_map.items():
        if key == "sample_spec" or not isinstance(entry, dict) or "off_peak_pricing" in entry:
            continue
        if any(entry.get(k) is not None for k in TOKEN_KEYS) or entry.get("tiered_pricing") \
                or entry.get("input_cost_per_query") is not None:
            keys.append(key)
    return keys


def make_case(rng, key, entry):
    ts = thresholds(entry)
    if ts and rng.random() < 0.6:
        t = rng.choice(ts)
        prompt = max(0, t + rng.choice((-1, 0, 1)))
    else:
        prompt = rng.choice((0, 1, 7, rng.randint(1, 5000), rng.randint(1, 300000), rng.randint(1, 2_000_000)))
    cached = rng.randint(0, prompt) if rng.random() < 0.5 else 0
    write = rng.randint(0, prompt - cached) if rng.random() < 0.4 else 0
    completion = rng.choice((0, rng.randint(1, 100), rng.randint(1, 50000)))
    reasoning = rng.randint(0, completion) if rng.random() < 0.5 else 0
    searches = rng.randint(1, 5) if entry.get("input_cost_per_query") is not None and rng.random() < 0.7 else 0
    return dict(model=key, provider=entry.get("litellm_provider"), input_tokens=prompt, output_tokens=completion,
                cached_input_tokens=cached, cache_write_tokens=write, reasoning_tokens=reasoning, searches=searches)


def litellm_cost(case, entry):
    details = {"query_count": case["searches"]} if case["searches"] else None
    usage = Usage(
        prompt_tokens=case["input_tokens"],
        completion_tokens=case["output_tokens"],
        total_tokens=case["input_tokens"] + case["output_tokens"],
        reasoning_tokens=case["reasoning_tokens"] or None,
        prompt_tokens_details=details,
        cache_read_input_tokens=case["cached_input_tokens"],
        cache_creation_input_tokens=case["cache_write_tokens"],
    )
    prompt_cost, completion_cost = generic_cost_per_token(
        model=case["model"], usage=usage, custom_llm_provider=case["provider"], model_info=entry,
        current_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    return prompt_cost + completion_cost


def agrees(ours: Decimal, theirs: float) -> bool:
    theirs_d = Decimal(repr(theirs))
    if ours == theirs_d:
        return True
    scale = max(abs(ours), abs(theirs_d))
    return abs(ours - theirs_d) <= scale * Decimal("1e-12")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meter", required=True)
    ap.add_argument("--cases", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    path = price_map_path()
    with open(path) as f:
        price_map = json.load(f)
    rng = random.Random(args.seed)
    models = candidate_models(price_map)
    # Every model with a long-context feature or a reasoning/query price first, then a random sample.
    special = [k for k in models if thresholds(price_map[k]) or price_map[k].get("litellm_provider") == "xai"
               or price_map[k].get("output_cost_per_reasoning_token") is not None
               or price_map[k].get("input_cost_per_query") is not None
               or price_map[k].get("cache_creation_input_token_cost") is not None]
    rest = [k for k in models if k not in set(special)]
    rng.shuffle(rest)
    order = special * 3 + rest
    cases = []
    i = 0
    while len(cases) < args.cases and order:
        key = order[i % len(order)]
        cases.append(make_case(rng, key, price_map[key]))
        i += 1
    events = [dict(c, timestamp=AT) for c in cases]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
        events_path = f.name
    with open(events_path) as stdin:
        run = subprocess.run([args.meter, "pricing", "quote", "--catalog", path, "--format", "litellm"],
                             stdin=stdin, capture_output=True, text=True, check=True)
    os.unlink(events_path)
    sys.stderr.write(run.stderr)
    quotes = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(quotes) == len(cases), (len(quotes), len(cases))
    mismatches, not_imported, compared, litellm_errors = [], 0, 0, 0
    for case, quote in zip(cases, quotes):
        entry = price_map[case["model"]]
        try:
            theirs = litellm_cost(case, entry)
        except Exception as e:  # noqa: BLE001
            litellm_errors += 1
            print(f"litellm error {case['model']}: {e}")
            continue
        if not quote.get("priced"):
            not_imported += 1
            print(f"not priced by meter: {case['model']} ({quote.get('reason') or quote.get('error')}); litellm {theirs!r}")
            continue
        compared += 1
        ours = Decimal(quote["cost_usd"])
        if not agrees(ours, theirs):
            mismatches.append((case, quote["cost_usd"], theirs))
    for case, ours, theirs in mismatches[:50]:
        print(f"MISMATCH {case}: meter {ours} litellm {theirs!r}")
    models_used = len({c["model"] for c in cases})
    at_threshold = sum(1 for c in cases if any(abs(c["input_tokens"] - t) <= 1 for t in thresholds(price_map[c["model"]])))
    xai = sum(1 for c in cases if c["provider"] == "xai")
    print(f"coverage: {at_threshold} cases at a threshold T-1/T/T+1, {xai} xai cases, "
          f"{sum(1 for c in cases if c['cached_input_tokens'])} with cache reads, "
          f"{sum(1 for c in cases if c['cache_write_tokens'])} with cache writes, "
          f"{sum(1 for c in cases if c['reasoning_tokens'])} with reasoning, "
          f"{sum(1 for c in cases if c['searches'])} with searches")
    print(f"crosscheck: {len(cases)} cases over {models_used} models, {compared} compared, "
          f"{len(mismatches)} mismatches, {not_imported} not imported by meter, {litellm_errors} litellm errors")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
