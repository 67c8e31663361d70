"""Schema-driven fuzzing of the review API (issue 16): every operation of the app's own OpenAPI schema,
with requests Schemathesis generates, sent in-process with the session token; half of them aimed at the
real render. No request may end in a server error or a traceback. ``DOPPEL_FUZZ=long`` runs more."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_review_helpers import Analysed, review_render  # noqa: F401

schemathesis = pytest.importorskip("schemathesis")

EXAMPLES = 300 if os.environ.get("DOPPEL_FUZZ") == "long" else 12
# whole-render jobs, covered elsewhere (retrain-mask: tests/test_review_retrain.py)
SKIP = {"/api/renders/{uid}/analyse", "/api/renders/{uid}/export", "/api/renders/{uid}/retrain-mask"}


def _operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_dict(app.openapi())
    return [r.ok() for r in schema.get_all_operations() if r.ok().path not in SKIP]


def test_every_operation_survives_generated_requests(review_render: Analysed) -> None:  # noqa: F811
    from fastapi.testclient import TestClient

    client = TestClient(review_render.app, base_url="http://127.0.0.1:8765", raise_server_exceptions=False)
    ops = _operations(review_render.app)
    assert len(ops) >= 8, [op.path for op in ops]
    failures: list[str] = []
    fuzz = _fuzzer(client, review_render, failures)
    for op in ops:
        fuzz(op.as_strategy(), op.path)
    assert failures == []


def _fuzzer(client: Any, render: Analysed, failures: list[str]) -> Any:
    def fuzz(strategy: Any, template: str) -> None:
        @given(case=strategy, real=st.booleans())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def check(case: Any, real: bool) -> None:
            params = {k: quote(str(v), safe="") for k, v in (case.path_parameters or {}).items()}
            if real and "uid" in params:
                params["uid"] = render.uid
            path = template.format(**params)
            body = case.body if type(case.body).__name__ != "NotSet" else None
            response = client.request(case.method, path, params=case.query or None,
                                      content=None if body is None else json.dumps(body, allow_nan=True),
                                      headers={"X-Doppel-Token": render.token,
                                               "content-type": "application/json"})
            if response.status_code >= 500 or b"Traceback" in response.content:
                failures.append(f"{case.method} {path} {str(body)[:200]} -> {response.status_code}")

        check()

    return fuzz
