"""schemathesis against the API's own OpenAPI document, served by uvicorn.

Workers of their own serve a namespace of its own, so the fuzzed workflows
(thousands of odd but valid inputs) never load the session's workers, and
stop with the test.
"""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .conftest import (
    API_FUZZ_NAMESPACE,
    TEST_CONFIG,
    console_script,
    free_port,
    subprocess_env,
)

# Every operation gets at least this many generated cases.
EXAMPLES_PER_OPERATION = 100
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


async def _wait_ready(url: str, within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        try:
            with await asyncio.to_thread(urllib.request.urlopen, url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        await asyncio.sleep(0.3)
    pytest.fail(f"{url} not ready after {within}s")


@pytest.fixture
async def api_url(server_address: str, tmp_path: Path) -> AsyncIterator[str]:
    config = tmp_path / "config.yaml"
    config.write_text(
        TEST_CONFIG.format(address=server_address, metrics_port=free_port(), store=tmp_path / "s")
        # Fuzzed workflows end soon whatever their input asks.
        .replace("workflow_execution_seconds: 120", "workflow_execution_seconds: 15")
        # As deployed: fault injection off, so the schema offers no fault fields.
        .replace("enabled: true", "enabled: false")
    )
    env = subprocess_env(config, TEMPORAL_NAMESPACE=API_FUZZ_NAMESPACE)
    port = free_port()
    log = (tmp_path / "processes.log").open("wb")
    workers = await asyncio.create_subprocess_exec(
        console_script(), "serve", env=env, stdout=log, stderr=log
    )
    api = await asyncio.create_subprocess_exec(
        console_script(), "api", "--port", str(port), "--workers", "2",
        env=env, stdout=log, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(f"{url}/readyz")
        yield url
    finally:
        for proc in (api, workers):
            if proc.returncode is None:
                proc.terminate()
        for proc in (api, workers):
            await proc.wait()
        log.close()


# At least 100 generated cases for each operation take one to three minutes on two busy cores;
# the suite-wide timeout is for hangs, not for this much work.
@pytest.mark.timeout(480)
async def test_no_input_gives_a_5xx_or_breaks_the_schema(api_url: str, tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "st"
    proc = await asyncio.create_subprocess_exec(
        str(st), "run", f"{api_url}/openapi.json",
        "--checks", CHECKS,
        "--max-examples", str(EXAMPLES_PER_OPERATION),
        # One: hypothesis parses lambdas' source with ast, and concurrent ast.parse calls in
        # threads trip CPython 3.11 ("AST constructor recursion depth mismatch").
        "--workers", "1",
        "--phases", "examples,coverage,fuzzing",
        "--generation-database", "none",
        "--suppress-health-check", "too_slow,filter_too_much",
        "--request-timeout", "40",
        "--no-color",
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await proc.communicate()
    text = output.decode(errors="replace")
    print(text)
    assert proc.returncode == 0, text[-6000:]
    # Every operation ran, none skipped.
    assert "Skipped" not in text or " 0 skipped" in text
