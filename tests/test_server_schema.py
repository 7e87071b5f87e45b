"""Property-based API testing: schemathesis generates requests from the server's own OpenAPI
spec (with a bearer token) against a real `thyrocad serve` process; no response may be a 5xx.

Examples are bounded so the run stays well under a minute. Uploads it generates are random
bytes, which the server must refuse with a 4xx (never crash on)."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from server_fixtures import ServerProcess, new_db

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(new_db(tmp_path_factory.mktemp("schema")), "--max-upload-mb", "1")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def auth_headers(server):
    return {"Authorization": f"Bearer {server.token()}"}


@pytest.fixture(scope="module")
def api_schema(server, auth_headers):
    return schemathesis.openapi.from_url(f"{server.url}/api/openapi.json", headers=auth_headers)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.exclude(path="/api/v1/token", method="DELETE").parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case, server, auth_headers):
    response = case.call(headers=auth_headers, timeout=60)
    case.validate_response(response, checks=[not_a_server_error])
    assert httpx.get(f"{server.url}/health").status_code == 200
