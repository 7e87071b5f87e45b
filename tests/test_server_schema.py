"""Property-based API testing: schemathesis generates requests from the server's own OpenAPI
spec (with a bearer token) against a real `thyrocad serve` process; no response may be a 5xx.

Examples are bounded so the run stays well under a minute. Uploads it generates are random
bytes, which the server must refuse with a 4xx (never crash on)."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from server_helpers import ServerProcess, new_db, tmp_uploads

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_bundle):
    db = new_db(tmp_path_factory.mktemp("schema"))
    proc = ServerProcess(server_bundle, db, "--max-upload-mb", "1")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def auth_headers(server):
    return {"Authorization": f"Bearer {server.token()}"}


def operations(server: ServerProcess, headers: dict[str, str]) -> list:
    """Every operation of the served spec (token revocation left out: it ends our session)."""
    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json", headers=headers)
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if op.label != "DELETE /api/v1/token"]


def test_no_server_errors(server, auth_headers):
    ops = operations(server, auth_headers)
    assert len(ops) >= 6
    statuses: list[int] = []
    for operation in ops:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        def no_5xx(case) -> None:
            response = case.call(headers=auth_headers, timeout=60)
            case.validate_response(response, checks=[not_a_server_error])
            statuses.append(response.status_code)

        no_5xx()
    assert len(statuses) >= 5 * len(ops) and max(statuses) < 500
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert tmp_uploads(server.db) == []
