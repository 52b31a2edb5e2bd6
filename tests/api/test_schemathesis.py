"""Schemathesis against the served OpenAPI spec (fetched from /openapi.json of the app): no
server error, no response outside the spec. Bounded examples, so it runs in `make test`."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Api, make_api

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


# The app over fakes, built at import: schemathesis reads the spec it serves to make the tests.
SERVED: Api = make_api(Path(tempfile.mkdtemp(prefix="jax-api-schemathesis-")) / "home")
schema = schemathesis.openapi.from_asgi("/openapi.json", SERVED.client.app)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    shutil.rmtree(SERVED.settings.jax_home.parent, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=15, deadline=None,
          suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_keeps_its_spec(case: Any) -> None:
    case.call_and_validate(headers=SERVED.auth("admin"), checks=CHECKS)
