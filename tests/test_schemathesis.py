"""schemathesis (property-based requests from the OpenAPI) against a live server on the
analysed sample city: every GET operation, valid and invalid inputs, public and analyst, and not
one server error (``not_a_server_error``).

Bounded: 25 examples per operation and generation mode, derandomized (the same cases every run),
no shrinking; each case is sent twice (public, then with an analyst token).
"""

from __future__ import annotations

import time

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

EXAMPLES = 25


def _runner(op, mode, base, session, role_headers, calls, statuses):  # type: ignore[no-untyped-def]
    """A Hypothesis test sending each generated case of ``op`` once per role."""

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case) -> None:  # type: ignore[no-untyped-def]
        for headers in role_headers:
            r = case.call_and_validate(
                base_url=base,
                session=session,
                headers=headers,
                checks=[not_a_server_error],
                timeout=60,
            )
            calls[op.label] = calls.get(op.label, 0) + 1
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    return run


def test_no_server_error_on_any_get_operation(sample_server, report_measured):
    base, _, token, log = sample_server
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    roles = {"public": {}, "analyst": {"Authorization": f"Bearer {token}"}}
    failures: list[str] = []
    calls: dict[str, int] = {}
    statuses: dict[int, int] = {}
    t0 = time.monotonic()
    with requests.Session() as session:  # one keep-alive connection
        for result in schema.get_all_operations():
            op = result.ok()
            if op.method.upper() != "GET":
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run = _runner(op, mode, base, session, roles.values(), calls, statuses)
                try:
                    run()
                except Unsatisfiable:  # no invalid input exists (an operation without params)
                    continue
                except Exception as e:  # a failed check: note it, go on with the others
                    failures.append(f"{op.label} ({mode.value}): {str(e)[:600]}")
    seconds = time.monotonic() - t0
    report_measured(
        f"schemathesis: {sum(calls.values())} requests on {len(calls)} GET operations in "
        f"{seconds:.0f} s, statuses {dict(sorted(statuses.items()))}"
    )
    errors = [x for x in log.read_text().splitlines() if "INFO:" not in x]
    assert not failures, "\n\n".join(failures) + "\n" + "\n".join(errors[-60:])
    # not vacuous: every GET operation of the API ran, with examples
    assert len(calls) >= 30, sorted(calls)
    assert all(n >= 2 for n in calls.values()), calls
    assert statuses.get(200, 0) > 0 and sum(v for k, v in statuses.items() if k >= 400) > 0
