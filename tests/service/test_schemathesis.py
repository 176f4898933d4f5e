"""Property-based fuzzing of the whole API from its live OpenAPI document (schemathesis).

Every operation gets generated requests, valid and invalid (:data:`EXAMPLES` of each
per operation); no answer may be a 500, and every answer must match the
document (status code, content type, body schema) and pass schemathesis's default checks.
``/events`` is left out: it streams forever (its own tests are in test_api.py).
"""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import Case  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from async_processor.service import ServiceConfig  # noqa: E402

from .conftest import ADMINS, TOKENS, start_service  # noqa: E402

#: What schema-valid requests may get: 422 too, since an unknown task type or dependency
#: id is a fact of the server, not of the schema (but never 400 or 500).
#: Examples per operation and mode: about 30-60 s in all on 2 vCPUs.
EXAMPLES = 250
ACCEPTED = ["2xx", "404", "409", "413", "422", "503"]


@pytest.mark.timeout(900)  # 40 s on an idle machine, 172-300 s beside seven other jobs
def test_api_conforms_and_never_fails() -> None:
    # the fuzzer is fast and sends wrong tokens on purpose: no rate limits here
    config = ServiceConfig(
        tokens=dict(TOKENS), admins=list(ADMINS), rate_limit=0, auth_failure_rate=0
    )
    with start_service(config) as service:
        schema = schemathesis.openapi.from_url(
            f"{service.base_url}/openapi.json", headers=service.headers
        ).exclude(path="/events")
        schema.config.checks.positive_data_acceptance.expected_statuses = ACCEPTED
        # Invalid requests must still get a documented, non-500 answer, but a repeated
        # scalar query parameter takes its last value (as everywhere in FastAPI), which
        # this check would count as accepting invalid data.
        schema.config.checks.negative_data_rejection.enabled = False
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 12
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                    database=None,
                )
                def check(case: Case[Any]) -> None:
                    response = case.call_and_validate(
                        base_url=service.base_url,
                        headers=service.headers,
                        additional_checks=[not_a_server_error],
                        timeout=10,
                    )
                    assert response.status_code != 500, response.text
                    assert "Traceback" not in response.text

                try:
                    check()
                except Unsatisfiable:
                    if mode is GenerationMode.POSITIVE:
                        raise  # nothing invalid can be made for an operation without inputs
