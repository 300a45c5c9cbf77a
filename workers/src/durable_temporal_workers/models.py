"""Inputs and results of the workflows and activities.

Plain dataclasses: the SDK's JSON converter turns them into JSON that any
client (the ``temporal`` CLI, another SDK, a script) can read and write.
Money is always integer cents.
"""

# No `from __future__ import annotations`: the SDK's converter calls get_type_hints on
# every dataclass it decodes (several per order), and string annotations are compiled
# anew each time (about 3x the cost).
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

# Task queues. One systemd service runs one queue.
ORDERS = "orders"
SAGAS = "sagas"
MACHINES = "stateful-machines"
LOYALTY = "loyalty"

# --- input limits -------------------------------------------------------------
# Workers check every workflow input against its type hints and these caps
# before the workflow runs (see workflows/inputs/). The caps keep anything a
# client sends far below the server's 2 MB payload limit, and keep the error
# reports and activity inputs built from it small.

# Any string: ids, names, SKUs, account and activity names.
MAX_ID_LENGTH = 200
# Free text, such as a postal address; a field opts in with limits(max_length=...).
MAX_TEXT_LENGTH = 1_000
# RFC 5321 caps an e-mail address at 254 characters.
MAX_EMAIL_LENGTH = 254
# Any list, and any JSON object read as a dict (e.g. fail_times).
MAX_ITEMS = 100
# An order's dispatch window: thirty days.
MAX_HOLD_SECONDS = 30 * 24 * 3600
# Field metadata keys read by workflows/inputs/convert.py.
MAX_LENGTH = "max_length"
MAX_ITEMS_KEY = "max_items"
MINIMUM = "minimum"
MAXIMUM = "maximum"


def limits(
    *,
    max_length: int | None = MAX_ID_LENGTH,
    max_items: int | None = MAX_ITEMS,
    minimum: int | None = None,
    maximum: int | None = None,
) -> Mapping[str, int | None]:
    """Input caps, as dataclass field metadata or ``Annotated[int, limits(...)]``.

    ``minimum`` and ``maximum`` bound an integer (or the integers of a list or
    object) beyond the 64 bits every integer gets; None means no cap.
    """
    return {MAX_LENGTH: max_length, MAX_ITEMS_KEY: max_items, MINIMUM: minimum, MAXIMUM: maximum}


@dataclass(frozen=True)
class FaultPlan:
    """Failures to inject, by activity name, for tests and demos.

    Counted with the activity's attempt number, which the server keeps, so
    "fail twice" means exactly two failed attempts however workers restart.
    """

    # Fail the first N attempts before the side effect.
    fail_times: dict[str, int] = field(default_factory=dict)
    # Apply the side effect, then fail the first N attempts, as if the reply
    # were lost: the retry must find the effect and not apply it again.
    fail_after_commit_times: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class WithFaults:
    """Workflow inputs that carry a FaultPlan as two plain JSON fields.

    Keyword-only, so subclasses keep their own required fields first.
    """

    fail_times: dict[str, int] = field(default_factory=dict)
    fail_after_commit_times: dict[str, int] = field(default_factory=dict)

    @property
    def faults(self) -> FaultPlan:
        return FaultPlan(self.fail_times, self.fail_after_commit_times)


# --- orders -------------------------------------------------------------------


@dataclass(frozen=True)
class OrderItem:
    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class Order(WithFaults):
    order_id: str
    items: list[OrderItem]
    address: str | None = field(default=None, metadata=limits(max_length=MAX_TEXT_LENGTH))
    email: str | None = field(default=None, metadata=limits(max_length=MAX_EMAIL_LENGTH))
    # Makes ship_order take this long; lets tests stop a worker mid-activity.
    ship_delay_seconds: float = 0.0
    # Seconds the charged order waits before it ships (a dispatch window), on a durable timer: the
    # server keeps it, so it fires on time across worker and server restarts.
    hold_seconds: int = field(default=0, metadata=limits(minimum=0, maximum=MAX_HOLD_SECONDS))

    @property
    def total_cents(self) -> int:
        return sum(item.quantity * item.unit_price_cents for item in self.items)


@dataclass(frozen=True)
class Charge:
    charge_id: str
    amount_cents: int


@dataclass(frozen=True)
class Shipment:
    tracking_number: str


@dataclass(frozen=True)
class Notification:
    order_id: str
    email: str | None
    message: str
    faults: FaultPlan = field(default_factory=FaultPlan)


@dataclass(frozen=True)
class OrderResult:
    order_id: str
    status: str
    amount_cents: int
    charge_id: str
    tracking_number: str


# --- sagas --------------------------------------------------------------------


@dataclass(frozen=True)
class Transfer(WithFaults):
    from_account: str
    to_account: str
    amount_cents: int


@dataclass(frozen=True)
class TransferLeg:
    """One account movement of a transfer, as an activity input."""

    account: str
    amount_cents: int
    faults: FaultPlan = field(default_factory=FaultPlan)


@dataclass(frozen=True)
class TransferResult:
    transfer_id: str
    status: str
    from_account: str
    to_account: str
    amount_cents: int


@dataclass(frozen=True)
class Trip(WithFaults):
    car: str
    hotel: str
    flight: str
    customer: str = ""


@dataclass(frozen=True)
class Reservation:
    """What to reserve (or cancel), as an activity input."""

    item: str
    faults: FaultPlan = field(default_factory=FaultPlan)


@dataclass(frozen=True)
class TripResult:
    trip_id: str
    status: str
    # Step name -> confirmation code.
    confirmations: dict[str, str]


@dataclass(frozen=True)
class SagaFailure:
    """Details attached to a failed saga's error."""

    failed_step: str
    error: str
    # Compensations that ran, in the order they ran.
    compensations: list[str]


@dataclass(frozen=True)
class SeedAccounts:
    # An operator's bulk set-up, so more than the usual 100 entries. A balance is
    # never seeded below zero (only a compensation takes one there).
    balances_cents: dict[str, int] = field(metadata=limits(max_items=1_000, minimum=0))


# --- the side-effect store ---------------------------------------------------

# voided: a step whose compensation already ran (found nothing to undo) came late.
Outcome = Literal["applied", "duplicate", "skipped", "rejected", "voided"]


@dataclass(frozen=True)
class Receipt:
    """What the store did with a request; a duplicate returns the first entry."""

    key: str
    outcome: Outcome
    seq: int | None = None
    amount_cents: int = 0
    detail: str = ""


@dataclass(frozen=True)
class KindReport:
    requested: int = 0
    applied: int = 0
    duplicate: int = 0
    skipped: int = 0
    rejected: int = 0
    voided: int = 0


@dataclass(frozen=True)
class EffectReport:
    requested: int
    applied: int
    # Requests recognised as repeats (retries after a lost reply) and not re-applied.
    deduplicated: int
    # Idempotency keys applied more than once: must always be 0.
    duplicated: int
    # Accounts whose balance differs from the sum of their ledger entries.
    unbalanced_accounts: list[str]
    by_kind: dict[str, KindReport] = field(default_factory=dict)


@dataclass(frozen=True)
class BalancesReport:
    accounts: dict[str, int]
    total_cents: int
    side_effects: EffectReport


# --- stateful actors ----------------------------------------------------------

MachineState = Literal["UP", "DOWN"]
MACHINE_UP: MachineState = "UP"
MACHINE_DOWN: MachineState = "DOWN"
# The signals MachineOperatorWorkflow takes (none carries an argument).
MachineSignal = Literal["setUp", "tearDown", "complete"]
SET_UP: MachineSignal = "setUp"
TEAR_DOWN: MachineSignal = "tearDown"
COMPLETE: MachineSignal = "complete"
# Counts of runs, signals and updates: at least 1.
AT_LEAST_ONE = limits(minimum=1)


@dataclass(frozen=True)
class MachineCarryOver:
    """Start options of MachineOperatorWorkflow, and the state each run hands to the next.

    Only known states and signals: anything else would sit in the workflow for
    good, ignoring every signal.
    """

    state: MachineState = MACHINE_DOWN
    # Signals received but not yet processed when the previous run ended. No
    # cap: the workflow writes this itself at continue-as-new, and refusing it
    # would end the machine's workflow.
    pending_signals: list[MachineSignal] = field(
        default_factory=list, metadata=limits(max_items=None)
    )
    # Continue as new after this many signals in one run (or when the server suggests it).
    continue_as_new_after: int = field(default=500, metadata=AT_LEAST_ONE)
    run_number: int = field(default=1, metadata=AT_LEAST_ONE)


@dataclass(frozen=True)
class LoyaltyAccount:
    """Start input of LoyaltyWorkflow, and the state each run hands to the next."""

    customer_id: str
    points: int = field(default=0, metadata=limits(minimum=0))
    gold_threshold: int = field(default=10, metadata=AT_LEAST_ONE)
    # Continue as new after this many updates in one run (or when the server suggests it).
    continue_as_new_after: int = field(default=500, metadata=AT_LEAST_ONE)
    run_number: int = field(default=1, metadata=AT_LEAST_ONE)
