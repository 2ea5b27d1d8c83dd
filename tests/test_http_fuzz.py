"""Property-based fuzzing of the HTTP API from its own OpenAPI document (schemathesis),
against the real server: no request may get a 5xx or take the server down.  Speech requests
are kept short (--max-text-chars 40) so the run stays around a minute."""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from wyoming_qwen3_tts.dev.serverproc import free_port, servers, synthesize

EXAMPLES = 30  # per operation


@pytest.fixture(scope="module")
def server(tiny_custom_voice, tiny_voice_design, tiny_base, tmp_path_factory):
    port = free_port()
    with servers() as start:
        srv = start("--model", str(tiny_custom_voice), "--model", str(tiny_voice_design),
                    "--model", str(tiny_base), "--http", f"http://127.0.0.1:{port}",
                    "--voices-dir", str(tmp_path_factory.mktemp("voices")),
                    "--data-dir", str(tmp_path_factory.mktemp("data")),
                    "--max-text-chars", "40", "--no-warmup", "--threads", "1")
        srv.wait_for_log(r"HTTP on ")
        srv.wait_for_log(r"Ready: ")
        srv.http = f"http://127.0.0.1:{port}"
        yield srv


def test_no_request_gets_a_server_error(server):
    """Every operation of the document, EXAMPLES generated requests each (schemathesis'
    strategies run by hypothesis here: its pytest plugin does not load under pytest 9)."""
    schema = schemathesis.openapi.from_url(server.http + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            case.call_and_validate(checks=[not_a_server_error], timeout=120)
            assert server.alive(), server.log[-4000:]

        run()
    # the fuzzing reached the speech itself, not only the validation in front of it
    assert "HTTP speech:" in server.log


def test_server_still_serves_after_the_fuzzing(server):
    assert server.alive()
    assert "Traceback" not in server.log, server.log[-6000:]
    assert asyncio.run(synthesize(server.port, "Hello there."))
