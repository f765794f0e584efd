"""Schemathesis against the API's own OpenAPI, on real Redis: no input gives a 5xx.

The broker is deliberately not configured: fuzzed subscriptions and positions must not reach the shared
topics other tests' ingests and processors read. So a *valid* write answers the documented 503
("broker not configured"), and that is the one 5xx allowed; every invalid one must be a clear 4xx.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.integration.api_support import api_settings, threaded_server

pytestmark = pytest.mark.integration

API_FUZZ_EXAMPLES = 400
ENDLESS = ("/api/v1/stream",)  # Server-Sent Events never end: covered by test_api_stream.py
WRITES = ("POST", "PUT", "DELETE")
TOKEN = "fuzz-token"
stats = {"cases": 0, "5xx": 0}


@pytest.fixture(scope="module")
def api_url(redis_server_url: str) -> Iterator[str]:
    """The real app behind uvicorn in a thread of its own (the fuzz calls are synchronous)."""
    with threaded_server(api_settings(redis_server_url.rsplit("/", 1)[0] + "/15", TICKWIRE_API_TOKEN=TOKEN)) as url:
        yield url


def test_api_given_fuzzed_requests_from_its_openapi_never_answers_5xx(api_url: str) -> None:
    """Test every operation with schema-driven and schema-violating requests, with and without the token."""
    from consumers.api import create_app

    spec = create_app(api_settings("redis://127.0.0.1:1/0")).openapi()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path not in ENDLESS]
    strategy = st.one_of(*[op.as_strategy(generation_mode=mode) for op in operations
                           for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)])

    @settings(max_examples=API_FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy, authorized=st.booleans())
    def call(case: schemathesis.Case, authorized: bool) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"} if authorized else {}
        response = case.call(base_url=api_url, headers=headers, timeout=15)
        stats["cases"] += 1
        if response.status_code < 500:
            return
        documented = (response.status_code == 503 and case.method.upper() in WRITES
                      and "broker" in response.text.lower())
        if not documented:
            stats["5xx"] += 1
            raise AssertionError(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                 f"{response.text[:300]}\n{case.as_curl_command()}")

    call()
    print(f"API fuzz: {stats['cases']} requests over {len(operations)} operations, 5xx {stats['5xx']}")
    assert stats["cases"] >= API_FUZZ_EXAMPLES // 2
