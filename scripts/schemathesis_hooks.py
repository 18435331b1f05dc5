"""Schemathesis hooks of scripts/test-openapi.

openapi.yaml states in each operation's `x-beyond-schema` the rules a JSON schema cannot
express (a time window relative to the server's clock, comparisons between fields or items,
what the tenant has stored). A schema-valid request may be refused for those rules only.

Schemathesis' own `positive_data_acceptance` check is configured (scripts/schemathesis.toml)
to let 400 and 422 through; this check takes over for them and is stricter: every problem
the error names must be one of the operation's `x-beyond-schema` rules (status, code and
field), or the run fails.
"""

import schemathesis
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case


def _problems(error):
    """(field, code) of every problem an error body names; field None when it names none."""
    details = error.get("details") or {}
    if error.get("code") == "invalid_events":
        return [
            (e.get("field"), e.get("code"))
            for event in details.get("events", [])
            for e in event.get("errors", [])
        ]
    if details.get("errors"):
        return [(e.get("field"), e.get("code")) for e in details["errors"]]
    return [(None, error.get("code"))]


def _documented(rules, status, field, code):
    return any(
        rule["status"] == status
        and rule["code"] == code
        and (field is None or rule.get("field") == field)
        for rule in rules
    )


@schemathesis.check
def refusal_is_a_documented_rule(ctx, response, case):
    """A schema-valid request is refused only for a rule in the operation's x-beyond-schema."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if is_unexpected_http_status_case(case):
        return None
    status = response.status_code
    if status not in (400, 422):
        return None
    rules = case.operation.definition.raw.get("x-beyond-schema", [])
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        raise AssertionError(f"a {status} answer without an error envelope")
    unexplained = [
        f"{code} ({field})" if field else str(code)
        for field, code in _problems(error)
        if not _documented(rules, status, field, code)
    ]
    if unexplained:
        raise AssertionError(
            f"A schema-valid request was refused with {status} for "
            f"{', '.join(unexplained)}, which is neither in the schema nor in the "
            f"operation's x-beyond-schema rules"
        )
    return None
