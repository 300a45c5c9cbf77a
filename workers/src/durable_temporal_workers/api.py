"""An HTTP API in front of the bundled workflows (FastAPI, served by uvicorn).

One Temporal client per process, configured like the workers (``temporal.*``).
Request bodies are the workflows' own inputs: they are decoded by the same
strict decoder the workers run (``workflows/inputs/``), with the same caps,
before anything reaches Temporal, and the OpenAPI schemas are derived from
the same dataclasses and caps.

Starts are idempotent: an ``Idempotency-Key`` header becomes the workflow id,
and a hash of the request is kept in the workflow's memo, so a repeat with
the same body answers with the same workflow and one with another body is
refused (409), whichever API process or restart sees it.

Errors are ``application/problem+json``. Nothing a client sends should give a
5xx: only Temporal out of reach does (503 with ``Retry-After``).
"""

# No `from __future__ import annotations`: FastAPI reads the closures' annotations at run time.

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import time
import types
import typing
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import (
    Client,
    WorkflowContinuedAsNewError,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RetryConfig, RPCError, RPCStatusCode

from durable_temporal_workers import __version__
from durable_temporal_workers.catalog import load_registry
from durable_temporal_workers.client import failure_info, to_json
from durable_temporal_workers.config import Config, load_config, resolve_config_path
from durable_temporal_workers.connection import make_runtime, tls_config
from durable_temporal_workers.models import MAX_ID_LENGTH, WithFaults
from durable_temporal_workers.registry import Registry
from durable_temporal_workers.workflows.inputs import (
    INVALID_INPUT,
    MAX_INT,
    Caps,
    InputSpec,
    parse_json,
    typed_run,
)
from durable_temporal_workers.workflows.loyalty import LoyaltyWorkflow

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# The memo key holding the hash of the request that started a workflow.
REQUEST_HASH_MEMO = "api.request_sha256"
# Seconds a client should wait before retrying while Temporal is out of reach.
RETRY_AFTER_SECONDS = 5
# Far below Temporal's 2 MB payload limit; the decoder's caps keep real inputs smaller still.
MAX_BODY_BYTES = 1 << 20
# How long a result request may hold its connection.
MAX_WAIT_SECONDS = 30.0
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._~:-]+$"
FAULT_FIELDS = ("fail_times", "fail_after_commit_times")
MACHINE_SIGNALS = ("setUp", "tearDown", "complete")
CLOSED_ERRORS = {"FAILED", "CANCELED", "TERMINATED", "TIMED_OUT"}

REQUESTS = Counter(
    "temporal_api_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "temporal_api_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


@dataclass(frozen=True)
class StartRoute:
    path: str
    workflow: str
    summary: str
    # The workflow id when no Idempotency-Key is given: this body field, else prefix-<uuid>.
    id_field: str | None = None
    id_prefix: str = ""


STARTS = (
    StartRoute("/orders", "OrderWorkflow", "Place an order", id_prefix="order"),
    StartRoute(
        "/transfers", "TransferMoneyWorkflow", "Transfer money (a saga)", id_prefix="transfer"
    ),
    StartRoute(
        "/trips", "BookTripWorkflow", "Book a car, a hotel and a flight (a saga)", id_prefix="trip"
    ),
    StartRoute("/accounts/seed", "SeedAccountsWorkflow", "Set account balances", id_prefix="seed"),
    StartRoute(
        "/machines", "MachineOperatorWorkflow", "Start a machine operator", id_field="machine_id"
    ),
    StartRoute("/loyalty", "LoyaltyWorkflow", "Open a loyalty account", id_field="customer_id"),
)


class Problem(Exception):
    """An RFC 9457 problem: the answer to a request that cannot be served."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        errors: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"type": "about:blank", "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.errors is not None:
            body["errors"] = self.errors
        return JSONResponse(
            body, status_code=self.status, headers=self.headers, media_type=PROBLEM_JSON
        )


def invalid(errors: list[tuple[str, str]]) -> Problem:
    return Problem(
        422,
        "Invalid request",
        "; ".join(f"{f}: {p}" for f, p in errors),
        [{"field": f, "problem": p} for f, p in errors],
    )


def unavailable(detail: str) -> Problem:
    return Problem(
        503,
        "Temporal is unavailable",
        detail,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def faults_enabled(config: Config) -> bool:
    # faults.enabled turns fault injection on for tests; off, inputs may not ask for failures.
    return config.faults.enabled


# --- the Temporal client ---------------------------------------------------------


class Temporal:
    """The process's one client, connected on first use so the API starts without Temporal."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                temporal = self._config.temporal
                try:
                    self._client = await Client.connect(
                        temporal.address,
                        namespace=temporal.namespace,
                        tls=tls_config(temporal.tls),
                        runtime=make_runtime(),
                        # Few quick retries: a request waits seconds at most, then gets a 503.
                        retry_config=RetryConfig(
                            initial_interval_millis=100,
                            max_interval_millis=1000,
                            max_elapsed_time_millis=3000,
                            max_retries=3,
                        ),
                    )
                except RuntimeError as err:
                    raise unavailable(f"cannot connect to {temporal.address}") from err
        return self._client


RPC_TIMEOUT = timedelta(seconds=10)


def _rpc_problem(err: RPCError) -> Problem:
    if err.status in (
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.CANCELLED,
    ):
        return unavailable(err.message)
    if err.status == RPCStatusCode.NOT_FOUND:
        return Problem(404, "Not found", err.message)
    if err.status in (RPCStatusCode.ALREADY_EXISTS, RPCStatusCode.FAILED_PRECONDITION):
        return Problem(409, "Conflict", err.message)
    if err.status == RPCStatusCode.INVALID_ARGUMENT:
        return invalid([("request", err.message)])
    return unavailable(f"{err.status.name}: {err.message}")


# --- inputs ------------------------------------------------------------------------


def _args_from_body(spec: InputSpec, body: Any) -> list[Any]:
    """The run method's arguments: the body itself for one dataclass, else its fields."""
    if len(spec.params) == 1 and spec.params[0].root == "":
        return [body]
    if not isinstance(body, dict):
        raise invalid([("body", "expected an object")])
    names = [p.name for p in spec.params]
    problems = [
        (key, f"unknown field (expected: {', '.join(names)})") for key in body if key not in names
    ]
    problems += [(p.name, "required field is missing") for p in spec.required if p.name not in body]
    if problems:
        raise invalid(problems)
    present = [i for i, p in enumerate(spec.params) if p.name in body]
    last = present[-1] if present else -1
    return [body.get(p.name) for p in spec.params[: last + 1]]


def decode(spec: InputSpec, args: list[Any]) -> list[Any]:
    try:
        return spec.decode(args)
    except Exception as err:
        details = getattr(err, "details", ())
        if getattr(err, "type", None) != INVALID_INPUT:
            raise
        raise invalid(
            [
                (d.get("field", "input"), d.get("problem", ""))
                for d in details
                if isinstance(d, dict)
            ]
            or [("body", str(err))]
        ) from None


def _canonical(body: Any) -> bytes:
    try:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise invalid([("body", "strings must be valid Unicode (no lone surrogates)")]) from None


async def _read_body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Problem(413, "Request body too large", f"at most {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# --- JSON schemas of the models, from the same hints and caps as the decoder -------


class Schemas:
    """JSON schemas (OpenAPI 3.1) of dataclasses, collected as components."""

    def __init__(self, hide_faults: bool) -> None:
        self.components: dict[str, Any] = {}
        self._hide_faults = hide_faults

    def of(self, hint: Any, caps: Caps | None) -> dict[str, Any]:  # noqa: PLR0912
        """``caps`` None: a response, where nothing is capped."""
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin is typing.Annotated:
            # Annotated[int, limits(minimum=1)]: the decoder's bounds, merged as it merges them.
            for meta in args[1:]:
                if caps is not None and isinstance(meta, Mapping):
                    caps = caps.merged(meta)
            return self.of(args[0], caps)
        if origin in (typing.Union, types.UnionType):
            return {"anyOf": [self.of(a, caps) for a in args]}
        if origin is typing.Literal:
            return {"enum": list(args)}
        if origin is list:
            schema: dict[str, Any] = {"type": "array", "items": self.of(args[0], caps)}
            if caps is not None and caps.max_items is not None:
                schema["maxItems"] = caps.max_items
            return schema
        if origin is dict:
            schema = {"type": "object", "additionalProperties": self.of(args[1], caps)}
            if caps is not None:
                schema["propertyNames"] = {"maxLength": MAX_ID_LENGTH}
                if caps.max_items is not None:
                    schema["maxProperties"] = caps.max_items
            return schema
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self._dataclass(hint, caps is not None)
        if hint is str:
            schema = {"type": "string"}
            if caps is not None and caps.max_length is not None:
                schema["maxLength"] = caps.max_length
            return schema
        if hint is int:
            schema = {"type": "integer"}
            if caps is not None:
                schema["minimum"] = -MAX_INT if caps.minimum is None else caps.minimum
                schema["maximum"] = MAX_INT if caps.maximum is None else caps.maximum
            return schema
        if hint is float:
            return {"type": "number"}
        if hint is bool:
            return {"type": "boolean"}
        if hint is type(None):
            return {"type": "null"}
        return {}

    def _dataclass(self, cls: type, is_input: bool) -> dict[str, Any]:
        name = cls.__name__ + ("" if is_input else "Result")
        if name not in self.components:
            self.components[name] = {}  # recursion guard
            hints = typing.get_type_hints(cls, include_extras=True)
            fields = [f for f in dataclasses.fields(cls) if f.init]
            if is_input and self._hide_faults and issubclass(cls, WithFaults):
                fields = [f for f in fields if f.name not in FAULT_FIELDS]
            required = [
                f.name
                for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ]
            schema: dict[str, Any] = {
                "type": "object",
                "properties": {
                    f.name: self.of(hints[f.name], Caps.of(f) if is_input else None) for f in fields
                },
                "required": required,
            }
            if is_input:
                schema["additionalProperties"] = False
            self.components[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def request_body(self, spec: InputSpec, route: StartRoute | None) -> dict[str, Any]:
        if len(spec.params) == 1 and spec.params[0].root == "":
            schema = self.of(spec.params[0].hint, Caps())
        else:
            props = {p.name: self.of(p.hint, Caps()) for p in spec.params}
            schema = {
                "type": "object",
                "properties": props,
                "required": [p.name for p in spec.required],
                "additionalProperties": False,
            }
        if route is not None and route.id_field is not None:
            # The field names the workflow, and a workflow id cannot be empty.
            target = schema
            if "$ref" in schema:
                target = self.components[schema["$ref"].rsplit("/", 1)[1]]
            target["properties"][route.id_field]["minLength"] = 1
        return schema


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
                    "required": ["field", "problem"],
                },
            },
        },
        "required": ["type", "title", "status"],
    }


# --- the application -----------------------------------------------------------------


# One closure per app: the routes share its client, config and schemas.
def create_app(  # noqa: PLR0915
    config: Config, registry: Registry | None = None
) -> FastAPI:
    registry = registry or load_registry()
    temporal = Temporal(config)
    hide_faults = not faults_enabled(config)
    schemas = Schemas(hide_faults)
    # OpenAPI responses of each operation, by (path, method), filled in below.
    responses: dict[tuple[str, str], dict[str, Any]] = {}
    ref = {"$ref": "#/components/schemas/Problem"}

    def problems(*codes: int) -> dict[str, Any]:
        titles = {
            404: "Unknown workflow",
            409: "Conflict with the workflow's state or an earlier request",
            413: "Request body too large",
            422: "Invalid request: each bad field is named",
            503: "Temporal is unavailable; retry after Retry-After seconds",
        }
        out: dict[str, Any] = {}
        for code in (*codes, 404, 503):
            out[str(code)] = {
                "description": titles[code],
                "content": {PROBLEM_JSON: {"schema": ref}},
            }
            if code == 503:
                out[str(code)]["headers"] = {
                    "Retry-After": {"schema": {"type": "string"}, "required": True}
                }
        return out

    def ok(code: int, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            str(code): {
                "description": description,
                "content": {"application/json": {"schema": schema}},
            }
        }

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="durable.temporal workflows",
        version=__version__,
        description="Start, follow and steer the bundled Temporal workflows over HTTP.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.temporal = temporal
    app.mount("/docs/static", StaticFiles(directory=str(swagger_ui_path)), name="docs-static")

    @app.exception_handler(Problem)
    async def on_problem(_: Request, err: Problem) -> Response:
        return err.response()

    @app.exception_handler(RPCError)
    async def on_rpc_error(_: Request, err: RPCError) -> Response:
        return _rpc_problem(err).response()

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, err: RequestValidationError) -> Response:
        found = []
        for e in err.errors():
            loc = [str(p) for p in e.get("loc", ())]
            where = f"{loc[0]} {'.'.join(loc[1:])}" if len(loc) > 1 else ".".join(loc)
            found.append((where, str(e.get("msg", "invalid"))))
        return invalid(found).response()

    @app.exception_handler(Exception)
    async def on_bug(_: Request, err: Exception) -> Response:
        log.exception("unexpected error", exc_info=err)
        return Problem(500, "Internal error").response()

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, err: StarletteHTTPException) -> Response:
        problem = Problem(err.status_code, str(err.detail), headers=err.headers)
        return problem.response()

    # --- starts ---

    id_key = Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=MAX_ID_LENGTH,
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="Becomes the workflow id; a repeat with the same body gets it again",
        ),
    ]
    start_schema = {
        "type": "object",
        "properties": {"workflow_id": {"type": "string"}, "run_id": {"type": "string"}},
        "required": ["workflow_id", "run_id"],
    }

    def add_start(route: StartRoute) -> None:
        wf = registry.workflow_spec(route.workflow)
        spec = InputSpec(wf.name, wf.run)
        refuse_faults = hide_faults and _takes_faults(spec)
        hash_prefix = wf.name.encode() + b"\0"

        async def start(request: Request, idempotency_key: id_key = None) -> Response:
            body, canonical = await _parse(request)
            if refuse_faults and isinstance(body, dict):
                found = [f for f in FAULT_FIELDS if f in body]
                if found:
                    raise invalid([(f, "fault injection is off (faults.enabled)") for f in found])
            args = decode(spec, _args_from_body(spec, body))
            digest = hashlib.sha256(hash_prefix + canonical).hexdigest()
            if idempotency_key is not None:
                workflow_id = idempotency_key
            elif route.id_field is not None:
                workflow_id = str(body[route.id_field])
            else:
                workflow_id = f"{route.id_prefix}-{uuid.uuid4().hex}"
            client = await temporal.client()
            timeouts = config.timeouts
            try:
                handle = await client.start_workflow(
                    wf.name,
                    args=args,
                    id=workflow_id,
                    task_queue=wf.queue,
                    execution_timeout=_seconds(timeouts.workflow_execution_seconds),
                    run_timeout=_seconds(timeouts.workflow_run_seconds),
                    task_timeout=_seconds(timeouts.workflow_task_seconds),
                    memo={REQUEST_HASH_MEMO: digest},
                    # An id is used once: a repeat finds the first workflow, even once it closed.
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    rpc_timeout=RPC_TIMEOUT,
                )
            except WorkflowAlreadyStartedError:
                described = await client.get_workflow_handle(workflow_id).describe(
                    rpc_timeout=RPC_TIMEOUT
                )
                earlier = await described.memo_value(REQUEST_HASH_MEMO, default=None)
                if described.workflow_type != wf.name or earlier != digest:
                    raise Problem(
                        409,
                        "Workflow id already used",
                        f"workflow {workflow_id!r} was started with another request",
                    ) from None
                return JSONResponse({"workflow_id": workflow_id, "run_id": described.run_id})
            run_id = handle.first_execution_run_id or handle.result_run_id or ""
            return JSONResponse({"workflow_id": workflow_id, "run_id": run_id}, status_code=202)

        app.add_api_route(
            route.path, start, methods=["POST"], summary=route.summary, tags=["start"]
        )
        responses[(route.path, "post")] = {
            **ok(202, "Started; the workflow id to follow it", start_schema),
            **ok(
                200,
                "Started earlier by the same request (same Idempotency-Key and body)",
                start_schema,
            ),
            **problems(409, 413, 422),
        }
        bodies[route.path] = schemas.request_body(spec, route)

    bodies: dict[str, dict[str, Any]] = {}
    for route in STARTS:
        add_start(route)

    # --- following and steering any workflow ---

    workflow_id_param = Annotated[
        str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="The workflow id")
    ]

    async def describe(workflow_id: str, workflow_type: str | None = None) -> Any:
        client = await temporal.client()
        described = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=RPC_TIMEOUT)
        if workflow_type is not None and described.workflow_type != workflow_type:
            raise Problem(404, "Not found", f"no {workflow_type} with id {workflow_id!r}")
        return described

    async def running(
        workflow_id: str, workflow_type: str | None = None
    ) -> WorkflowHandle[Any, Any]:
        """The handle of a running workflow; 409 once it closed (cancel, signal, update, query).

        A closed workflow's query needs a replay, and one that never ran a task has no state.
        """
        described = await describe(workflow_id, workflow_type)
        if described.status != WorkflowExecutionStatus.RUNNING:
            raise Problem(
                409, "Workflow not running", f"{workflow_id!r} is {described.status.name}"
            )
        client = await temporal.client()
        return client.get_workflow_handle(workflow_id)

    async def status_of(workflow_id: str, described: Any, fetch: bool = True) -> dict[str, Any]:
        status = described.status.name if described.status else "UNKNOWN"
        out: dict[str, Any] = {
            "workflow_id": workflow_id,
            "run_id": described.run_id,
            "workflow_type": described.workflow_type,
            "status": status,
        }
        if fetch and (status == "COMPLETED" or status in CLOSED_ERRORS):
            client = await temporal.client()
            handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(
                workflow_id, run_id=described.run_id
            )
            try:
                out["result"] = to_json(
                    await handle.result(follow_runs=False, rpc_timeout=RPC_TIMEOUT)
                )
            except WorkflowFailureError as err:
                out["error"] = failure_info(err)
        return out

    async def wait_for_end(workflow_id: str, wait_seconds: float) -> dict[str, Any]:
        """The status once the workflow closed, or as it is when ``wait_seconds`` ran out.

        The describe comes before the long poll on the run it names, so a result is answered
        as it arrives, with no call to Temporal after it: two calls, and none added to the
        time an order takes end to end. A failure is described once more for its status.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        client = await temporal.client()
        described = await describe(workflow_id)
        while described.status == WorkflowExecutionStatus.RUNNING and loop.time() < deadline:
            handle = client.get_workflow_handle(workflow_id, run_id=described.run_id)
            try:
                async with asyncio.timeout_at(deadline):
                    result = await handle.result(follow_runs=False)
            except TimeoutError:
                pass
            except WorkflowContinuedAsNewError:
                pass  # described again below, and the new run is waited for
            except WorkflowFailureError as err:
                described = await describe(workflow_id)
                if described.status != WorkflowExecutionStatus.RUNNING:
                    ending = await status_of(workflow_id, described, fetch=False)
                    return {**ending, "error": failure_info(err)}
                continue  # retried in a new run
            else:
                ending = await status_of(workflow_id, described, fetch=False)
                return {**ending, "status": "COMPLETED", "result": to_json(result)}
            described = await describe(workflow_id)
        return await status_of(workflow_id, described)

    status_schema = {
        "type": "object",
        "properties": {
            "workflow_id": {"type": "string"},
            "run_id": {"type": "string"},
            "workflow_type": {"type": "string"},
            "status": {
                "enum": [s.name for s in WorkflowExecutionStatus] + ["UNKNOWN"],
            },
            "result": {},
            "error": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "array"},
                },
                "required": ["type", "message", "details"],
            },
        },
        "required": ["workflow_id", "run_id", "workflow_type", "status"],
    }

    @app.get(
        "/workflows/{workflow_id}",
        summary="A workflow's status, and its result once closed",
        tags=["workflows"],
    )
    async def workflow_status(workflow_id: workflow_id_param) -> Response:
        return JSONResponse(await status_of(workflow_id, await describe(workflow_id)))

    responses[("/workflows/{workflow_id}", "get")] = {
        **ok(200, "Status; result or error once closed", status_schema),
        **problems(422),
    }

    @app.get(
        "/workflows/{workflow_id}/result",
        summary="Wait for a workflow's result",
        tags=["workflows"],
    )
    async def workflow_result(
        workflow_id: workflow_id_param,
        wait_seconds: Annotated[
            float, Query(ge=0, le=MAX_WAIT_SECONDS, description="How long to wait for the end")
        ] = 0,
    ) -> Response:
        if wait_seconds > 0:
            out = await wait_for_end(workflow_id, wait_seconds)
        else:
            out = await status_of(workflow_id, await describe(workflow_id))
        return JSONResponse(out, status_code=202 if out["status"] == "RUNNING" else 200)

    responses[("/workflows/{workflow_id}/result", "get")] = {
        **ok(200, "The workflow closed: its result or error", status_schema),
        **ok(202, "Still running after the wait", status_schema),
        **problems(422),
    }

    @app.post(
        "/workflows/{workflow_id}/cancel",
        summary="Ask a running workflow to cancel",
        tags=["workflows"],
    )
    async def cancel(workflow_id: workflow_id_param) -> Response:
        await (await running(workflow_id)).cancel(rpc_timeout=RPC_TIMEOUT)
        return JSONResponse(
            {"workflow_id": workflow_id, "status": "CANCEL_REQUESTED"}, status_code=202
        )

    responses[("/workflows/{workflow_id}/cancel", "post")] = {
        **ok(
            202,
            "Cancellation requested; the workflow undoes what ran and ends CANCELED",
            {
                "type": "object",
                "properties": {
                    "workflow_id": {"type": "string"},
                    "status": {"const": "CANCEL_REQUESTED"},
                },
                "required": ["workflow_id", "status"],
            },
        ),
        **problems(409, 422),
    }

    # --- the machine operator: signals and query ---

    @app.post(
        "/machines/{workflow_id}/signals/{signal}",
        summary="Signal a machine operator",
        tags=["machines"],
    )
    async def machine_signal(
        workflow_id: workflow_id_param,
        signal: Annotated[Literal["setUp", "tearDown", "complete"], Path()],
    ) -> Response:
        handle = await running(workflow_id, "MachineOperatorWorkflow")
        await handle.signal(signal, rpc_timeout=RPC_TIMEOUT)
        return JSONResponse({"workflow_id": workflow_id, "signal": signal}, status_code=202)

    responses[("/machines/{workflow_id}/signals/{signal}", "post")] = {
        **ok(
            202,
            "Signal delivered; the machine applies signals in order",
            {
                "type": "object",
                "properties": {
                    "workflow_id": {"type": "string"},
                    "signal": {"enum": list(MACHINE_SIGNALS)},
                },
                "required": ["workflow_id", "signal"],
            },
        ),
        **problems(409, 422),
    }

    @app.get("/machines/{workflow_id}", summary="A machine's state (query)", tags=["machines"])
    async def machine_state(workflow_id: workflow_id_param) -> Response:
        handle = await running(workflow_id, "MachineOperatorWorkflow")
        state = await handle.query("getStatus", rpc_timeout=RPC_TIMEOUT)
        return JSONResponse({"workflow_id": workflow_id, "state": state})

    responses[("/machines/{workflow_id}", "get")] = {
        **ok(
            200,
            "The machine's state",
            {
                "type": "object",
                "properties": {"workflow_id": {"type": "string"}, "state": {"type": "string"}},
                "required": ["workflow_id", "state"],
            },
        ),
        **problems(409, 422),
    }

    # --- loyalty: update and query ---

    points_spec = InputSpec("addLoyaltyPoint", typed_run(LoyaltyWorkflow.add_loyalty_point))
    message_schema = {
        "type": "object",
        "properties": {"workflow_id": {"type": "string"}, "message": {"type": "string"}},
        "required": ["workflow_id", "message"],
    }

    @app.post(
        "/loyalty/{workflow_id}/points", summary="Add loyalty points (update)", tags=["loyalty"]
    )
    async def loyalty_points(workflow_id: workflow_id_param, request: Request) -> Response:
        body, _ = await _parse(request)
        args = decode(points_spec, _args_from_body(points_spec, body))
        handle = await running(workflow_id, "LoyaltyWorkflow")
        try:
            message = await handle.execute_update(
                "addLoyaltyPoint", args=args, rpc_timeout=RPC_TIMEOUT
            )
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            text = getattr(cause, "message", None) or str(cause)
            raise invalid([("points", text)]) from None
        return JSONResponse({"workflow_id": workflow_id, "message": message})

    responses[("/loyalty/{workflow_id}/points", "post")] = {
        **ok(200, "The account's new status", message_schema),
        **problems(409, 413, 422),
    }
    bodies["/loyalty/{workflow_id}/points"] = schemas.request_body(points_spec, None)

    @app.get(
        "/loyalty/{workflow_id}", summary="A loyalty account's status (query)", tags=["loyalty"]
    )
    async def loyalty_message(workflow_id: workflow_id_param) -> Response:
        handle = await running(workflow_id, "LoyaltyWorkflow")
        message = await handle.query("getLoyaltyMessage", rpc_timeout=RPC_TIMEOUT)
        return JSONResponse({"workflow_id": workflow_id, "message": message})

    responses[("/loyalty/{workflow_id}", "get")] = {
        **ok(200, "The account's status", message_schema),
        **problems(409, 422),
    }

    # --- the balances report ---

    balances_wf = registry.workflow_spec("BalancesWorkflow")
    report_schema = schemas.of(typed_run(balances_wf.run).__annotations__.get("return"), None)

    @app.get("/balances", summary="Balances and the side-effect report", tags=["sagas"])
    async def balances() -> Response:
        client = await temporal.client()
        handle: WorkflowHandle[Any, Any] = await client.start_workflow(
            balances_wf.name,
            id=f"balances-{uuid.uuid4().hex}",
            task_queue=balances_wf.queue,
            execution_timeout=timedelta(seconds=MAX_WAIT_SECONDS),
            rpc_timeout=RPC_TIMEOUT,
        )
        try:
            report = await handle.result(rpc_timeout=timedelta(seconds=MAX_WAIT_SECONDS + 5))
        except WorkflowFailureError as err:
            raise unavailable(f"the report failed: {failure_info(err)['message']}") from None
        return JSONResponse(to_json(report))

    responses[("/balances", "get")] = {
        **ok(
            200, "Every account's balance, and what the side-effect store recorded", report_schema
        ),
        "503": problems()["503"],
    }

    # --- health, metrics, docs ---

    @app.get("/healthz", summary="The process answers", tags=["operations"])
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", summary="Temporal answers", tags=["operations"])
    async def readyz() -> Response:
        client = await temporal.client()
        try:
            await client.workflow_service.get_system_info(
                GetSystemInfoRequest(), retry=False, timeout=timedelta(seconds=3)
            )
        except RPCError as err:
            raise unavailable(err.message) from None
        return JSONResponse({"status": "ready"})

    state_schema = {
        "type": "object",
        "properties": {"status": {"type": "string"}},
        "required": ["status"],
    }
    responses[("/healthz", "get")] = ok(200, "The process is up", state_schema)
    responses[("/readyz", "get")] = {
        **ok(200, "Temporal is reachable", state_schema),
        "503": problems()["503"],
    }

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # One answer for all uvicorn worker processes.
            collected = CollectorRegistry()
            multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
            return Response(generate_latest(collected), media_type=CONTENT_TYPE_LATEST)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        # Swagger UI from the swagger-ui-bundle package: hosts cannot reach a CDN.
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="durable.temporal workflows API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path, operations in doc["paths"].items():
            for method, operation in operations.items():
                operation["responses"] = responses[(path, method)]
                if path in bodies and method == "post":
                    operation["requestBody"] = {
                        "required": True,
                        "content": {"application/json": {"schema": bodies[path]}},
                    }
        components = doc.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        components.update(schemas.components)
        components["Problem"] = _problem_schema()
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(MetricsMiddleware, routes=app.router.routes)
    return app


def _takes_faults(spec: InputSpec) -> bool:
    return any(isinstance(p.hint, type) and issubclass(p.hint, WithFaults) for p in spec.params)


async def _parse(request: Request) -> tuple[Any, bytes]:
    """The decoded body, and its canonical encoding (the idempotency hash's input)."""
    raw = await _read_body(request)
    try:
        body = parse_json(raw)
    except ValueError as err:
        raise invalid([("body", str(err))]) from None
    # Encoding it also rejects what Temporal's converter could not encode.
    return body, _canonical(body)


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


class MetricsMiddleware:
    """Counts requests and times them by route template (not by raw path: ids are unbounded)."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # FastAPI leaves the route it matched in the scope; matching every route again
            # is only for what it did not route (static files, unknown paths).
            matched = scope.get("route")
            route = matched.path if matched is not None else _route_of(self.routes, scope)
            method = scope.get("method", "")
            REQUESTS.labels(route, method, str(status)).inc()
            LATENCY.labels(route, method).observe(time.perf_counter() - started)


def _route_of(routes: list[BaseRoute], scope: Scope) -> str:
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "other"))
    return "other"


def app_from_environment() -> FastAPI:
    """The uvicorn factory: the workers' config file and environment, as ``serve`` reads them."""
    registry = load_registry()
    path = resolve_config_path(None, os.environ)
    config = load_config(path, os.environ, known_activities=registry.activity_names())
    return create_app(config, registry)
