"""Property-based fuzzing of every operation in Stead's own OpenAPI document, with schemathesis.

A live `stead run` (embedded runtime: SQLite, in-process queue and broker) on the hermetic test
graphs serves `/openapi.json`; for each operation schemathesis generates valid requests
(positive) and requests that break the schema (negative). No answer may be a 5xx, and every answer
must have a status code, content type and body that the document declares for the operation.
A second server runs the same operations with custom auth on (tests/graphs/auth.py), every
request as alice: auth adds 401/403 answers, which the document must then declare too.

`schemathesis.pytest.from_fixture` cannot be used: it reads `Item._nodeid`, which pytest 9 no
longer has. The operations are therefore walked here, one subtest each, with Hypothesis driving
`operation.as_strategy()` directly.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from stead.auth.options import DEFAULT_OPEN_PATHS
from tests.conftest import GRAPHS_CONFIG, GRAPHS_DIR
from tests.support.postgres import session_uses_postgres
from tests.support.servers import StartedServer, stead_server

# The PostgreSQL pass of `make test` runs tests/integration only; this guards a manual run with
# the variable set, since the server below is always the embedded one.
pytestmark = pytest.mark.skipif(
    session_uses_postgres() or "DATABASE_URI" in os.environ,
    reason="the fuzz test runs on the embedded runtime only",
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Per operation and generation mode: 58 operations x 2 modes x 25 keeps the run near a minute on
# a 2-core machine while still reaching every parameter of every body.
MAX_EXAMPLES = 25
# The server with auth runs the same route code behind the auth layer; fewer examples reach every
# authorization handler and keep the module within a few minutes.
MAX_EXAMPLES_WITH_AUTH = 10
ALICE = {"Authorization": "Bearer alice-token"}
# Their 200 body is whatever the graph's state holds: any JSON is right.
FREE_FORM_BODIES = {
    "POST /runs/wait",
    "POST /threads/{thread_id}/runs/wait",
    "GET /threads/{thread_id}/runs/{run_id}/join",
    "POST /threads/{thread_id}/runs/{run_id}/cancel",
}
# No operation should take long on made-up input; a stream that stayed open on a real thread would
# send heartbeats every 5 s, so this bounds the request rather than its reads.
REQUEST_TIMEOUT_SECONDS = 30


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[StartedServer]:
    # Its own server: the fuzzer leaves threads, assistants and store items behind.
    with stead_server(GRAPHS_CONFIG, env={"BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS": "2"}) as server:
        yield server


@pytest.fixture(scope="module")
def auth_fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    # The test graphs from a config elsewhere, so their paths are made absolute.
    config: dict[str, Any] = json.loads(GRAPHS_CONFIG.read_text())
    config["graphs"] = {
        graph_id: str(GRAPHS_DIR / spec.removeprefix("./"))
        for graph_id, spec in config["graphs"].items()
    }
    config["dependencies"] = [str(GRAPHS_DIR)]
    config["auth"] = {"path": f"{GRAPHS_DIR / 'auth.py'}:auth"}
    path = tmp_path_factory.mktemp("auth-fuzz") / "langgraph.json"
    path.write_text(json.dumps(config))
    with stead_server(path, env={"BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS": "2"}) as server:
        yield server


def test_every_operation(fuzz_server: StartedServer, subtests: pytest.Subtests) -> None:
    _fuzz_every_operation(fuzz_server.url, {}, MAX_EXAMPLES, subtests)


def test_every_operation_with_auth(
    auth_fuzz_server: StartedServer, subtests: pytest.Subtests
) -> None:
    statuses = _fuzz_every_operation(auth_fuzz_server.url, ALICE, MAX_EXAMPLES_WITH_AUTH, subtests)
    # Alice's token is valid: a 401 to a valid request means it went out without the token.
    assert statuses[401] == 0
    assert statuses[200] > 0, statuses


def test_success_bodies_are_documented(fuzz_server: StartedServer) -> None:
    """Without a schema for a 200 body, the fuzzer accepts any JSON there."""
    document = httpx.get(f"{fuzz_server.url}/openapi.json").json()
    undocumented = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if (body := operation["responses"].get("200", {}).get("content", {}))
        and body.get("application/json", {}).get("schema") == {}
    ]
    assert sorted(undocumented) == sorted(FREE_FORM_BODIES)


def test_real_resources_match_their_schemas(fuzz_server: StartedServer) -> None:
    """Made-up ids mostly find nothing, so the fuzzer rarely sees a populated resource: here real
    ones (runs done, an interrupt pending, a failed run, a subgraph, a cron, store items) go
    through every read, each answer checked against the document."""
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    with httpx.Client(base_url=fuzz_server.url, timeout=REQUEST_TIMEOUT_SECONDS) as http:

        def call(
            method: str, template: str, body: Any = None, params: Any = None, **path_ids: str
        ) -> Any:
            path = template.format(**{**ids, **path_ids})
            response = http.request(method, path, json=body, params=params)
            assert response.status_code < 300, (method, path, response.text)
            schema[template][method].validate_response(response)
            return response.json() if response.content else None

        ids: dict[str, str] = {"namespace": "child"}
        assistant = call("POST", "/assistants", {"graph_id": "nested", "config": {"c": 1}})
        ids["assistant_id"] = assistant["assistant_id"]
        call("PATCH", "/assistants/{assistant_id}", {"metadata": {"m": 1}})
        call("POST", "/assistants/{assistant_id}/latest", {"version": 1})
        for template in ("", "/graph", "/schemas", "/subgraphs", "/subgraphs/{namespace}"):
            call("GET", "/assistants/{assistant_id}" + template)
        call("POST", "/assistants/{assistant_id}/versions", {})
        call("POST", "/assistants/search", {})
        call("POST", "/assistants/search", {"select": ["assistant_id", "description"]})
        call("POST", "/assistants/count", {})

        ids["thread_id"] = call("POST", "/threads", {"metadata": {"m": 1}, "ttl": 60})["thread_id"]
        call("POST", "/threads/{thread_id}/runs/wait", {"assistant_id": "hitl", "input": {}})
        run = call("POST", "/threads/{thread_id}/runs", {"assistant_id": ids["assistant_id"]})
        ids["run_id"] = run["run_id"]
        call("GET", "/threads/{thread_id}/runs/{run_id}/join")
        call("GET", "/threads/{thread_id}/runs/{run_id}")
        call("GET", "/threads/{thread_id}/runs", params={"select": ["run_id", "status"]})
        call("GET", "/threads/{thread_id}/runs")
        for template in ("", "/state", "/storage", "/history"):
            call("GET", "/threads/{thread_id}" + template, params={"include": "ttl"})
        state = call("GET", "/threads/{thread_id}/state", params={"subgraphs": "true"})
        ids["checkpoint_id"] = state["checkpoint_id"]
        call("GET", "/threads/{thread_id}/state/{checkpoint_id}")
        call("POST", "/threads/{thread_id}/state/checkpoint", {"checkpoint": {}, "subgraphs": True})
        call("POST", "/threads/{thread_id}/history", {"limit": 5})
        call("POST", "/threads/{thread_id}/state", {"values": {"text": "edited"}})
        call("POST", "/threads/{thread_id}/copy")
        failed = call("POST", "/threads", {})["thread_id"]
        failing = {"assistant_id": "failing", "input": {}}
        call("POST", "/threads/{thread_id}/runs/wait", failing, thread_id=failed)
        call("GET", "/threads/{thread_id}", thread_id=failed)
        call("POST", "/threads/search", {})
        call("POST", "/threads/search", {"select": ["thread_id"], "extract": {"t": "values.text"}})
        call("POST", "/threads/count", {})
        call("POST", "/runs/batch", [{"assistant_id": "echo", "input": {}}])

        cron = {"schedule": "0 0 1 1 *", "assistant_id": "echo"}
        ids["cron_id"] = call("POST", "/threads/{thread_id}/runs/crons", cron)["cron_id"]
        call("PATCH", "/runs/crons/{cron_id}", {"enabled": False})
        call("GET", "/runs/crons/{cron_id}")
        call("POST", "/runs/crons/search", {})
        call("POST", "/runs/crons/search", {"select": ["cron_id", "end_time"]})
        call("POST", "/runs/crons/count", {})
        call("POST", "/threads/prune", {"thread_ids": [failed]})

        call("PUT", "/store/items", {"namespace": ["fuzz", "n"], "key": "k", "value": {"v": 1}})
        call("GET", "/store/items", params={"key": "k", "namespace": "fuzz.n"})
        call("GET", "/store/items", params={"key": "missing", "namespace": "fuzz.n"})
        call("POST", "/store/items/search", {"namespace_prefix": ["fuzz"]})
        call("POST", "/store/namespaces", {})
        call("GET", "/info")


# Reads and updates of a thread's state: on made-up ids they only find nothing.
STATE_OPERATIONS = (
    "/threads/{thread_id}/state",
    "/threads/{thread_id}/state/{checkpoint_id}",
    "/threads/{thread_id}/state/checkpoint",
    "/threads/{thread_id}/history",
)
MAX_STATE_EXAMPLES = 40
# Messages a client might send the `messages` reducer: roles it knows and one it does not, content
# of the right type and not.
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "system", "tool", "robot", ""]),
            "content": st.one_of(st.text(max_size=5), st.integers(), st.none()),
        },
        optional={"id": st.text(max_size=5), "type": st.sampled_from(["human", "ai", "x"])},
    ),
    max_size=3,
)


def test_state_operations_on_threads_with_checkpoints(
    fuzz_server: StartedServer, subtests: pytest.Subtests
) -> None:
    """Every state read and update, fuzzed on real threads: runs done, a run that failed on input
    its reducer refused, an interrupt pending, a subgraph. A graph that raises meanwhile (a
    reducer refusing a value) must be a documented 4xx, never a 5xx."""
    with httpx.Client(base_url=fuzz_server.url, timeout=REQUEST_TIMEOUT_SECONDS) as http:
        threads = [
            _thread_after_run(http, "agent", {"messages": [{"role": "user", "content": "hi"}]}),
            _thread_after_run(http, "agent", {"messages": [{"role": "robot", "content": "x"}]}),
            _thread_after_run(http, "steps", {"steps": []}),
            _thread_after_run(http, "hitl", {"text": "t"}),
            _thread_after_run(http, "nested", {"text": "t"}),
        ]
        checkpoints = [
            state["checkpoint_id"]
            for thread_id in threads
            for state in http.post(f"/threads/{thread_id}/history", json={"limit": 3}).json()
        ]
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    for path in STATE_OPERATIONS:
        for operation in schema[path].values():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                with subtests.test(operation=operation.label, mode=mode.value):
                    cases = st.builds(
                        _on_real_thread,
                        operation.as_strategy(mode),
                        st.sampled_from(threads),
                        st.one_of(st.none(), st.sampled_from(checkpoints)),
                        st.one_of(st.none(), MESSAGES),
                    )
                    _fuzz(cases, {}, MAX_STATE_EXAMPLES, Counter())


def _thread_after_run(http: httpx.Client, graph_id: str, values: dict[str, Any]) -> str:
    thread_id = str(http.post("/threads", json={}).json()["thread_id"])
    run = {"assistant_id": graph_id, "input": values}
    assert http.post(f"/threads/{thread_id}/runs/wait", json=run).status_code == 200
    return thread_id


def _on_real_thread(
    case: Case, thread_id: str, checkpoint_id: str | None, messages: list[Any] | None
) -> Case:
    """The generated request, sent to a real thread, at a real checkpoint when drawn, with
    messages for the reducer when drawn and the body has values to update."""
    case.path_parameters = {**(case.path_parameters or {}), "thread_id": thread_id}
    if checkpoint_id is not None and "checkpoint_id" in case.path_parameters:
        case.path_parameters["checkpoint_id"] = checkpoint_id
    if messages is not None and isinstance(case.body, dict) and "values" in case.body:
        case.body = {**case.body, "values": {"messages": messages}}
    return case


def test_auth_refusals_are_documented(auth_fuzz_server: StartedServer) -> None:
    document = httpx.get(f"{auth_fuzz_server.url}/openapi.json", headers=ALICE).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path in DEFAULT_OPEN_PATHS:
                assert operation["security"] == [], (method, path)
            else:
                assert {"401", "403"} <= set(operation["responses"]), (method, path)


def _fuzz_every_operation(
    url: str, headers: dict[str, str], max_examples: int, subtests: pytest.Subtests
) -> Counter[int]:
    """Fuzz every operation in both modes; returns how often each status code answered valid
    requests (negative ones may drop the credential on purpose, to test the security scheme)."""
    statuses: Counter[int] = Counter()
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50, "the OpenAPI document lost operations"
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            with subtests.test(operation=operation.label, mode=mode.value):
                try:
                    counted = statuses if mode is GenerationMode.POSITIVE else Counter()
                    _fuzz(operation.as_strategy(mode), headers, max_examples, counted)
                except Unsatisfiable:
                    # No parameters, or only ones any string satisfies: nothing breaks the schema.
                    if mode is GenerationMode.POSITIVE:
                        raise
                    pytest.skip("no request can break this operation's schema")
    return statuses


def _fuzz(
    cases: object, headers: dict[str, str], max_examples: int, statuses: Counter[int]
) -> None:
    @settings(
        max_examples=max_examples,
        # Reproducible in CI; a failure prints the request to replay with curl.
        derandomize=True,
        database=None,
        deadline=None,
        # Slow or filtered generation of big bodies is expected, not a problem with the test.
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: Case) -> None:
        response = case.call_and_validate(
            checks=CHECKS, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS
        )
        statuses[response.status_code] += 1

    run()
