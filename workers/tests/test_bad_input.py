"""Bad input at the edge: every malformed start fails the workflow at once, with nothing done.

Clients send JSON (the ``temporal`` CLI, other SDKs), so these tests send raw
payloads, not dataclasses. Each bad start must end with the workflow FAILED on
its first workflow task, with a non-retryable ``InvalidInput`` error naming the
field, no activity scheduled and nothing in the side-effect store.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer
from temporalio.workflow import _Definition

from durable_temporal_workers.cli import main
from durable_temporal_workers.config import Config
from durable_temporal_workers.models import (
    LOYALTY,
    MACHINES,
    ORDERS,
    SAGAS,
    LoyaltyAccount,
    MachineCarryOver,
    Order,
    OrderItem,
    OrderResult,
)
from durable_temporal_workers.policies import ActivityPolicyInterceptor
from durable_temporal_workers.registry import registry
from durable_temporal_workers.store import Store
from durable_temporal_workers.workflows.inputs import INVALID_INPUT, InputSpec
from durable_temporal_workers.workflows.loyalty import LoyaltyWorkflow
from durable_temporal_workers.workflows.orders import OrderWorkflow

from .conftest import temporal_binary

# A workflow that fails on bad input must do so well within this.
PROMPTLY = 10.0

ITEM = {"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}
ORDER = {"order_id": "o-1", "items": [ITEM], "address": "1 Main Street"}
TRANSFER = {"from_account": "alice", "to_account": "bob", "amount_cents": 100}
TRIP = {"car": "compact", "hotel": "inn", "flight": "LH123"}


def raw(data: bytes, encoding: bytes = b"json/plain") -> RawValue:
    """A start argument exactly as a client put it on the wire."""
    return RawValue(Payload(metadata={"encoding": encoding}, data=data))


def as_json(value: object) -> RawValue:
    return raw(json.dumps(value).encode())


def changed(base: dict[str, Any], drop: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
    result = {k: v for k, v in base.items() if k not in drop}
    result.update(changes)
    return result


def decode(workflow_name: str, *args: Any) -> list[Any]:
    return InputSpec(workflow_name, registry.workflow_spec(workflow_name).run).decode(args)


def invalid(workflow_name: str, *args: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        decode(workflow_name, *args)
    assert caught.value.type == INVALID_INPUT
    assert caught.value.non_retryable
    return caught.value


# --- decoding, without a server --------------------------------------------------


def test_valid_json_decodes_to_the_dataclass_with_defaults() -> None:
    [order] = decode("OrderWorkflow", as_json(changed(ORDER, fail_times={"charge_payment": 2})))
    assert order == Order(
        "o-1", [OrderItem("BOOK-1", 2, 1250)], "1 Main Street", fail_times={"charge_payment": 2}
    )
    assert order.ship_delay_seconds == 0.0
    # An integer is a fine JSON number for a float field.
    [slow] = decode("OrderWorkflow", as_json(changed(ORDER, ship_delay_seconds=2)))
    assert slow.ship_delay_seconds == 2.0
    assert isinstance(slow.ship_delay_seconds, float)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("two", 'items[0].quantity: expected an integer, got "two"'),
        (True, "items[0].quantity: expected an integer, got true"),
        (2.5, "items[0].quantity: expected an integer, got 2.5"),
        (2.0, "items[0].quantity: expected an integer, got 2.0"),
        (None, "items[0].quantity: expected an integer, got null"),
        (2**63, "items[0].quantity: out of range"),
    ],
)
def test_no_coercion(value: object, expected: str) -> None:
    order = changed(ORDER, items=[changed(ITEM, quantity=value)])
    assert expected in invalid("OrderWorkflow", as_json(order)).message


def test_every_problem_is_named() -> None:
    order = {
        "order_id": 5,
        "items": [changed(ITEM, drop=("sku",), colour="red")],
        "address": None,
        "fail_times": {"charge_payment": "2"},
    }
    error = invalid("OrderWorkflow", as_json(order))
    assert error.message.startswith("invalid OrderWorkflow input: ")
    fields = [d["field"] for d in error.details]
    assert sorted(fields) == [
        'fail_times["charge_payment"]',
        "items[0].colour",
        "items[0].sku",
        "order_id",
    ]
    assert "items[0].sku: required field is missing" in error.message
    assert "items[0].colour: unknown field (expected: sku, quantity, unit_price_cents)" in (
        error.message
    )


def test_caps() -> None:
    long_id = "x" * 201
    error = invalid("TransferMoneyWorkflow", as_json(changed(TRANSFER, from_account=long_id)))
    assert "from_account: at most 200 characters, got 201" in error.message
    # The bad value is quoted at most in part, however long it is.
    error = invalid("TransferMoneyWorkflow", as_json(changed(TRANSFER, amount_cents=long_id)))
    assert len(error.message) < 200
    # Free text gets more room than ids.
    decode("OrderWorkflow", as_json(changed(ORDER, address="a" * 1000)))
    error = invalid("OrderWorkflow", as_json(changed(ORDER, address="a" * 1001)))
    assert "address: at most 1000 characters, got 1001" in error.message
    # A dispatch window of up to thirty days, never a negative one.
    decode("OrderWorkflow", as_json(changed(ORDER, hold_seconds=30 * 24 * 3600)))
    for hold in (-1, 30 * 24 * 3600 + 1):
        assert (
            "hold_seconds:"
            in invalid("OrderWorkflow", as_json(changed(ORDER, hold_seconds=hold))).message
        )
    error = invalid("OrderWorkflow", as_json(changed(ORDER, items=[ITEM] * 101)))
    assert "items: at most 100 items, got 101" in error.message
    decode("OrderWorkflow", as_json(changed(ORDER, items=[ITEM] * 100)))
    faults = {f"activity_{i}": 1 for i in range(101)}
    error = invalid("OrderWorkflow", as_json(changed(ORDER, fail_times=faults)))
    assert "fail_times: at most 100 entries, got 101" in error.message


def test_many_problems_are_counted_not_listed() -> None:
    items = [changed(ITEM, quantity="many")] * 30
    error = invalid("OrderWorkflow", as_json(changed(ORDER, items=items)))
    assert error.message.endswith("; and 20 more problems")
    assert len(error.details) == 10


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (raw(b"{not json"), "not valid JSON: Expecting property name"),
        (raw(b""), "not valid JSON: Expecting value"),
        (raw(b'{"amount_cents": NaN}'), "not valid JSON: NaN is not a JSON number"),
        (raw(b'{"a": 1, "a": 2}'), 'duplicate key "a"'),
        (raw(b"\xff\xfe"), "not valid JSON"),
        (raw(b"[" * 100_000), "not valid JSON"),
        (
            raw(b"\x00", b"binary/plain"),
            "expected JSON (encoding json/plain), got encoding binary/plain",
        ),
        (raw(b"", b"binary/null"), "expected an object, got null"),
        (as_json([TRANSFER]), "expected an object, got a list"),
    ],
)
def test_not_json(payload: RawValue, expected: str) -> None:
    error = invalid("TransferMoneyWorkflow", payload)
    assert expected in error.message
    assert error.details[0]["field"] == "input"


def test_argument_count() -> None:
    assert "takes 1 argument, got 0" in invalid("OrderWorkflow").message
    # With more arguments than the run method declares the SDK decodes them itself.
    assert "takes 1 argument, got 2" in invalid("OrderWorkflow", ORDER, ORDER).message
    assert "takes 1 to 2 arguments, got 3" in invalid("MachineOperatorWorkflow", "m", {}, 1).message
    assert "takes 0 arguments, got 1" in invalid("BalancesWorkflow", {}).message


def test_plain_values_are_checked_too() -> None:
    # What the SDK hands over when the argument count is not the required one,
    # as after MachineOperatorWorkflow continues as new with its carry-over.
    machine, carry = decode("MachineOperatorWorkflow", "m1", {"pending_signals": ["setUp"] * 500})
    assert machine == "m1"
    assert len(carry.pending_signals) == 500  # the carry-over is not capped
    error = invalid("MachineOperatorWorkflow", "m1", {"state": 1})
    assert 'carry.state: expected one of "UP", "DOWN", got 1' in error.message


@pytest.mark.parametrize(
    ("workflow_name", "args", "expected"),
    [
        (
            "MachineOperatorWorkflow",
            ["m1", {"state": "EXPLODED"}],
            'carry.state: expected one of "UP", "DOWN", got "EXPLODED"',
        ),
        ("MachineOperatorWorkflow", ["m1", {"state": "up"}], 'got "up"'),
        (
            "MachineOperatorWorkflow",
            ["m1", {"pending_signals": ["setUp", "explode"]}],
            'carry.pending_signals[1]: expected one of "setUp", "tearDown", "complete",'
            ' got "explode"',
        ),
        (
            "MachineOperatorWorkflow",
            ["m1", {"continue_as_new_after": 0}],
            "carry.continue_as_new_after: must be at least 1, got 0",
        ),
        ("MachineOperatorWorkflow", ["m1", {"run_number": -1}], "carry.run_number: must be at"),
        (
            "LoyaltyWorkflow",
            [{"customer_id": "c", "points": -1}],
            "points: must be at least 0, got -1",
        ),
        (
            "LoyaltyWorkflow",
            [{"customer_id": "c", "gold_threshold": -5}],
            "gold_threshold: must be at least 1, got -5",
        ),
        (
            "LoyaltyWorkflow",
            [{"customer_id": "c", "gold_threshold": 0}],
            "gold_threshold: must be at least 1, got 0",
        ),
        (
            "LoyaltyWorkflow",
            [{"customer_id": "c", "continue_as_new_after": 0}],
            "continue_as_new_after: must be at least 1, got 0",
        ),
        ("LoyaltyWorkflow", [{"customer_id": "c", "run_number": 0}], "run_number: must be at"),
        (
            "SeedAccountsWorkflow",
            [{"balances_cents": {"alice": 5, "bob": -1}}],
            'balances_cents["bob"]: must be at least 0, got -1',
        ),
        (
            "SeedAccountsWorkflow",
            [{"balances_cents": {"alice": 2**63}}],
            'balances_cents["alice"]: out of range',
        ),
    ],
)
def test_domain_bounds(workflow_name: str, args: list[Any], expected: str) -> None:
    error = invalid(workflow_name, *[as_json(a) for a in args])
    assert expected in error.message
    assert len(error.details) == 1


def test_values_within_the_bounds_decode() -> None:
    _, carry = decode(
        "MachineOperatorWorkflow",
        as_json("m1"),
        as_json({"state": "UP", "pending_signals": ["tearDown", "complete"], "run_number": 7}),
    )
    assert carry == MachineCarryOver("UP", ["tearDown", "complete"], 500, 7)
    [account] = decode(
        "LoyaltyWorkflow",
        as_json({"customer_id": "c", "points": 0, "gold_threshold": 1, "continue_as_new_after": 1}),
    )
    assert account == LoyaltyAccount("c", 0, 1, 1)
    [seed] = decode("SeedAccountsWorkflow", as_json({"balances_cents": {"a": 0, "b": 2**63 - 1}}))
    assert seed.balances_cents == {"a": 0, "b": 2**63 - 1}


async def _set_run(self: object, tags: set[str]) -> None:
    return None


def test_unsupported_input_type_fails_at_import() -> None:
    with pytest.raises(TypeError, match="unsupported input type"):
        InputSpec("SetWorkflow", _set_run)


def test_callers_still_see_the_typed_signature() -> None:
    definition = _Definition.must_from_run_fn(OrderWorkflow.run)
    assert definition.arg_types == [RawValue]
    # The client reads the result type from here.
    assert definition.ret_type is OrderResult
    assert registry.workflow_spec("OrderWorkflow").run.__annotations__["order"] == "Order"


# --- against the server ----------------------------------------------------------


BAD_STARTS = [
    # a. not JSON at all
    ("OrderWorkflow", ORDERS, raw(b"{not json"), "not valid JSON"),
    ("TransferMoneyWorkflow", SAGAS, raw(b"amount=100"), "not valid JSON"),
    ("BookTripWorkflow", SAGAS, raw(b"\x00\x01", b"binary/plain"), "expected JSON"),
    ("LoyaltyWorkflow", LOYALTY, raw(b"{"), "not valid JSON"),
    ("MachineOperatorWorkflow", MACHINES, raw(b"m-1"), "machine_id: not valid JSON"),
    # b. wrong types, missing, unknown and null fields
    (
        "OrderWorkflow",
        ORDERS,
        as_json({"order_id": 5, "items": "many"}),
        'order_id: expected a string, got 5; items: expected a list, got "many"',
    ),
    (
        "OrderWorkflow",
        ORDERS,
        as_json(changed(ORDER, items=[changed(ITEM, quantity="two")])),
        'items[0].quantity: expected an integer, got "two"',
    ),
    (
        "OrderWorkflow",
        ORDERS,
        as_json(changed(ORDER, items=[changed(ITEM, quantity=True)])),
        "items[0].quantity: expected an integer, got true",
    ),
    ("OrderWorkflow", ORDERS, as_json(changed(ORDER, drop=("items",))), "items: required field"),
    (
        "OrderWorkflow",
        ORDERS,
        as_json(changed(ORDER, items=None)),
        "items: expected a list, got null",
    ),
    ("OrderWorkflow", ORDERS, as_json(changed(ORDER, colour="red")), "colour: unknown field"),
    (
        "TransferMoneyWorkflow",
        SAGAS,
        as_json(changed(TRANSFER, amount_cents="100")),
        'amount_cents: expected an integer, got "100"',
    ),
    (
        "TransferMoneyWorkflow",
        SAGAS,
        as_json(changed(TRANSFER, amount_cents=1.5)),
        "amount_cents: expected an integer, got 1.5",
    ),
    (
        "TransferMoneyWorkflow",
        SAGAS,
        as_json(changed(TRANSFER, drop=("to_account",))),
        "to_account: required field is missing",
    ),
    (
        "TransferMoneyWorkflow",
        SAGAS,
        as_json(changed(TRANSFER, memo="rent")),
        "memo: unknown field",
    ),
    (
        "TransferMoneyWorkflow",
        SAGAS,
        as_json(changed(TRANSFER, fail_times={"credit": "10"})),
        'fail_times["credit"]: expected an integer, got "10"',
    ),
    ("BookTripWorkflow", SAGAS, as_json(changed(TRIP, hotel=None)), "hotel: expected a string"),
    ("BookTripWorkflow", SAGAS, as_json(changed(TRIP, drop=("car",))), "car: required field"),
    ("BookTripWorkflow", SAGAS, as_json(changed(TRIP, boat="yes")), "boat: unknown field"),
    (
        "SeedAccountsWorkflow",
        SAGAS,
        as_json({"balances_cents": {"alice": "5"}}),
        'balances_cents["alice"]: expected an integer, got "5"',
    ),
    ("OrderWorkflow", ORDERS, None, "OrderWorkflow takes 1 argument, got 0"),
    # c. oversized, but under the server's 2 MB limit
    (
        "OrderWorkflow",
        ORDERS,
        as_json(changed(ORDER, address="x" * 1_000_000)),
        "address: at most 1000 characters, got 1000000",
    ),
    (
        "TransferMoneyWorkflow",
        SAGAS,
        as_json(changed(TRANSFER, from_account="a" * 1_000_000)),
        "from_account: at most 200 characters, got 1000000",
    ),
    (
        "BookTripWorkflow",
        SAGAS,
        as_json(changed(TRIP, customer="c" * 1_000_000)),
        "customer: at most 200 characters, got 1000000",
    ),
]


def _case_id(case: tuple[str, str, RawValue | None, str]) -> str:
    return f"{case[0]}: {case[3][:40]}"


async def start_bad(
    client: Client, workflow_name: str, queue: str, args: list[Any], **options: Any
) -> WorkflowHandle[Any, Any]:
    """Starts a workflow under a fresh ``bad-`` id, the way any client could."""
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        workflow_name, args=args, id=f"bad-{uuid.uuid4().hex[:8]}", task_queue=queue, **options
    )
    return handle


async def failure_of(handle: WorkflowHandle[Any, Any]) -> BaseException | None:
    with pytest.raises(WorkflowFailureError) as failure:
        async with asyncio.timeout(PROMPTLY):
            await handle.result()
    return failure.value.cause


async def events(handle: WorkflowHandle[Any, Any]) -> list[EventType.ValueType]:
    return [e.event_type for e in (await handle.fetch_history()).events]


async def assert_nothing_done(handle: WorkflowHandle[Any, Any], store: Store) -> None:
    history = await events(handle)
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in history
    # Failed on the first workflow task, not after retrying it.
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in history
    assert history.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 1
    assert history[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    assert store.requests(f"{handle.id}:") == []


@pytest.mark.parametrize("case", BAD_STARTS, ids=_case_id)
async def test_bad_start_fails_the_workflow_at_once(
    client: Client, store: Store, case: tuple[str, str, RawValue | None, str]
) -> None:
    workflow_name, queue, payload, expected = case
    handle = await start_bad(client, workflow_name, queue, [] if payload is None else [payload])
    error = await failure_of(handle)
    assert isinstance(error, ApplicationError)
    assert error.type == INVALID_INPUT
    assert error.non_retryable
    assert error.message.startswith(f"invalid {workflow_name} input: ")
    assert expected in error.message
    assert len(error.message) < 1_000
    await assert_nothing_done(handle, store)


BAD_DOMAIN_STARTS = [
    (
        "MachineOperatorWorkflow",
        MACHINES,
        ["m-1", {"state": "EXPLODED"}],
        'carry.state: expected one of "UP", "DOWN", got "EXPLODED"',
    ),
    (
        "MachineOperatorWorkflow",
        MACHINES,
        ["m-1", {"pending_signals": ["reboot"]}],
        "carry.pending_signals[0]: expected one of",
    ),
    (
        "MachineOperatorWorkflow",
        MACHINES,
        ["m-1", {"continue_as_new_after": -1}],
        "carry.continue_as_new_after: must be at least 1, got -1",
    ),
    (
        "LoyaltyWorkflow",
        LOYALTY,
        [{"customer_id": "c", "points": -10}],
        "points: must be at least 0, got -10",
    ),
    (
        "LoyaltyWorkflow",
        LOYALTY,
        [{"customer_id": "c", "gold_threshold": -1}],
        "gold_threshold: must be at least 1, got -1",
    ),
    (
        "SeedAccountsWorkflow",
        SAGAS,
        [{"balances_cents": {"alice": 100, "mallory": -100}}],
        'balances_cents["mallory"]: must be at least 0, got -100',
    ),
]


@pytest.mark.parametrize(
    "case", BAD_DOMAIN_STARTS, ids=[f"{c[0]}: {c[3][:30]}" for c in BAD_DOMAIN_STARTS]
)
async def test_input_out_of_bounds_fails_the_workflow_at_once(
    client: Client, store: Store, case: tuple[str, str, list[Any], str]
) -> None:
    workflow_name, queue, args, expected = case
    handle = await start_bad(client, workflow_name, queue, [as_json(a) for a in args])
    error = await failure_of(handle)
    assert isinstance(error, ApplicationError)
    assert error.type == INVALID_INPUT
    assert error.non_retryable
    assert expected in error.message
    await assert_nothing_done(handle, store)


async def test_bad_signals_change_nothing_and_the_machine_goes_on(client: Client) -> None:
    """Signals take no arguments: extra ones are ignored; an unknown signal is never handled.

    Neither fails the workflow or its task, so one bad sender cannot wedge a machine.
    """
    machine = f"bad-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        "MachineOperatorWorkflow", as_json(machine), id=machine, task_queue=MACHINES
    )
    await handle.signal("explode")
    await handle.signal("setUp", as_json("now"))
    async with asyncio.timeout(PROMPTLY):
        while await handle.query("getStatus") != "UP":
            await asyncio.sleep(0.05)
    await handle.signal("complete")
    assert await handle.result() == "UP"
    history = await events(handle)
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in history
    assert history.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == 1


@pytest.mark.parametrize("amount", [-5, 0])
async def test_business_rules_still_apply_to_well_typed_input(
    client: Client, store: Store, amount: int
) -> None:
    # InvalidTransfer, raised by the workflow itself before any activity.
    transfer = as_json(changed(TRANSFER, amount_cents=amount))
    handle = await start_bad(client, "TransferMoneyWorkflow", SAGAS, [transfer])
    error = await failure_of(handle)
    assert isinstance(error, ApplicationError)
    assert error.type == "InvalidTransfer"
    assert "positive amount" in error.message
    await assert_nothing_done(handle, store)


@pytest.mark.parametrize(
    ("items", "reason"),
    [([], "it has no items"), ([changed(ITEM, quantity=0)], "has quantity 0")],
)
async def test_invalid_order_stops_at_validate_order(
    client: Client, store: Store, items: list[dict[str, Any]], reason: str
) -> None:
    # Business validation stays in the validate_order activity (see
    # test_orders.py): that one activity runs, nothing with a side effect does.
    handle = await start_bad(
        client, "OrderWorkflow", ORDERS, [as_json(changed(ORDER, items=items))]
    )
    error = await failure_of(handle)
    assert isinstance(error, ActivityError)
    assert isinstance(error.cause, ApplicationError)
    assert error.cause.type == "InvalidOrder"
    assert reason in error.cause.message
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == ["validate_order"]
    assert store.requests(f"{handle.id}:") == []


async def test_valid_json_from_any_client_still_runs(client: Client, store: Store) -> None:
    workflow_id = f"json-{uuid.uuid4().hex[:8]}"
    order = changed(ORDER, order_id=workflow_id, fail_times={"charge_payment": 1})
    result = await client.execute_workflow(
        "OrderWorkflow", as_json(order), id=workflow_id, task_queue=ORDERS
    )
    assert result["status"] == "COMPLETED"
    assert result["amount_cents"] == 2 * 1250
    kinds = [r.kind for r in store.requests(f"{workflow_id}:")]
    assert kinds == ["charge", "shipment", "notification"]


async def test_payload_over_the_server_limit_is_refused_at_start(client: Client) -> None:
    workflow_id = f"huge-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RPCError) as refused:
        await client.start_workflow(
            "OrderWorkflow",
            changed(ORDER, address="x" * 3_000_000),
            id=workflow_id,
            task_queue=ORDERS,
        )
    assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert "Blob data size exceeds limit" in refused.value.message
    with pytest.raises(RPCError) as missing:
        await client.get_workflow_handle(workflow_id).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


def temporal_cli(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            temporal_binary(),
            *args,
            "--address",
            config.temporal.address,
            "--namespace",
            config.temporal.namespace,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


async def test_temporal_cli_refuses_malformed_json(client: Client, config: Config) -> None:
    workflow_id = f"cli-{uuid.uuid4().hex[:8]}"
    start = ["workflow", "start", "--type", "OrderWorkflow", "--task-queue", ORDERS]
    done = await asyncio.to_thread(
        temporal_cli, config, *start, "--workflow-id", workflow_id, "--input", "{not json"
    )
    assert done.returncode == 1
    assert "input #1 is not valid JSON" in done.stderr
    with pytest.raises(RPCError):
        await client.get_workflow_handle(workflow_id).describe()


async def test_temporal_cli_wrong_types_fail_the_workflow(
    client: Client, config: Config, store: Store
) -> None:
    workflow_id = f"cli-{uuid.uuid4().hex[:8]}"
    start = ["workflow", "start", "--type", "OrderWorkflow", "--task-queue", ORDERS]
    bad = json.dumps({"order_id": 5, "items": "many"})
    done = await asyncio.to_thread(
        temporal_cli, config, *start, "--workflow-id", workflow_id, "--input", bad
    )
    assert done.returncode == 0, done.stderr
    handle = client.get_workflow_handle(workflow_id)
    error = await failure_of(handle)
    assert isinstance(error, ApplicationError)
    assert error.type == INVALID_INPUT
    assert "order_id: expected a string, got 5" in error.message
    await assert_nothing_done(handle, store)


async def test_signal_with_start_and_bad_input_fails_before_any_handler(
    client: Client, store: Store
) -> None:
    # The SDK runs start signals' handlers before run; the constructor
    # (@workflow.init) checks the input first, so no handler sees bad state.
    handle = await start_bad(
        client, "MachineOperatorWorkflow", MACHINES, [as_json(5)], start_signal="setUp"
    )
    error = await failure_of(handle)
    assert isinstance(error, ApplicationError)
    assert error.type == INVALID_INPUT
    assert "machine_id: expected a string, got 5" in error.message
    await assert_nothing_done(handle, store)


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        (2.5, "points: expected an integer, got 2.5"),
        (True, "points: expected an integer, got true"),
        ("3", 'points: expected an integer, got "3"'),
        (None, "points: expected an integer, got null"),
        (2**70, "points: out of range"),
        ([1, 2], "points: expected an integer, got a list"),
        (0, "points: must be at least 1, got 0"),
        (-3, "points: must be at least 1, got -3"),
    ],
)
async def test_bad_update_argument_is_rejected_and_leaves_no_trace(
    client: Client, points: object, expected: str
) -> None:
    customer = f"customer-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        "LoyaltyWorkflow", as_json({"customer_id": customer}), id=customer, task_queue=LOYALTY
    )
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update("addLoyaltyPoint", as_json(points))
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == INVALID_INPUT
    assert expected in cause.message
    # Rejected by the validator: nothing in the history, the points unchanged, the
    # workflow still taking updates.
    events = [e.event_type async for e in handle.fetch_history_events()]
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED not in events
    assert await handle.query("getLoyaltyMessage") == f"{customer} has 0 points, 10 more to Gold."
    assert await handle.execute_update("addLoyaltyPoint", as_json(3)) == (
        f"{customer} has 3 points, 7 more to Gold."
    )
    await handle.terminate("test done")
    # The accepted update decodes the same way on replay.
    replayed = await Replayer(workflows=[LoyaltyWorkflow]).replay_workflow(
        await handle.fetch_history(), raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None


async def test_update_cannot_push_the_total_past_what_the_next_run_accepts(client: Client) -> None:
    customer = f"customer-{uuid.uuid4().hex[:8]}"
    start = {"customer_id": customer, "points": 2**63 - 2}
    handle = await client.start_workflow(
        "LoyaltyWorkflow", as_json(start), id=customer, task_queue=LOYALTY
    )
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update("addLoyaltyPoint", as_json(2))
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == INVALID_INPUT
    assert cause.non_retryable
    problem = "9223372036854775806 + 2 points is more than 2^63 - 1"
    assert cause.message == f"invalid addLoyaltyPoint input: points: {problem}"
    assert cause.details == ({"field": "points", "problem": problem},)
    assert "Gold member" in await handle.execute_update("addLoyaltyPoint", as_json(1))
    await handle.terminate("test done")


async def test_histories_replay_deterministically(client: Client, config: Config) -> None:
    # Decoding runs again on replay; it must reach the same outcome.
    bad = await start_bad(client, "OrderWorkflow", ORDERS, [as_json(changed(ORDER, items="many"))])
    await failure_of(bad)
    good_id = f"json-{uuid.uuid4().hex[:8]}"
    await client.execute_workflow(
        "OrderWorkflow", as_json(changed(ORDER, order_id=good_id)), id=good_id, task_queue=ORDERS
    )
    replayer = Replayer(workflows=[OrderWorkflow], interceptors=[ActivityPolicyInterceptor(config)])
    for workflow_id in (bad.id, good_id):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None


def test_the_cli_refuses_negative_starting_points(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["loyalty", "start", "--id", "c", "--points", "-1"])
    assert stopped.value.code == 2
    assert "--points: must be an integer of at least 0, got '-1'" in capsys.readouterr().err
