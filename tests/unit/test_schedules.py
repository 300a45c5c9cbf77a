"""durable.temporal.schedule: validation, normal forms and the plan, without a server."""

from __future__ import annotations

import sys

import pytest
from render import ROOT

sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.durable.temporal.plugins.module_utils.schedules import (  # noqa: E402
    ScheduleError,
    cron_sets,
    described_form,
    format_duration,
    parse_duration,
    plan,
    schedule_errors,
    wanted_form,
)

BALANCES = {"id": "balances", "workflow": "BalancesWorkflow", "task_queue": "sagas", "interval": "5s"}


def full_range(start: int, end: int, step: int = 1) -> list[list[int]]:
    return [[start, end, step]]


def described(**changes: object) -> dict[str, object]:
    """What the module reads back for BALANCES created as is."""
    base: dict[str, object] = {
        "workflow": "BalancesWorkflow",
        "task_queue": "sagas",
        "workflow_id": "balances",
        "input": [],
        "calendars": [],
        "intervals": [[5, 0]],
        "overlap": "skip",
        "paused": False,
        "note": "",
        "jitter": 0,
        "catchup_window": 365 * 86400,
    }
    return base | changes


def calendar(**fields: list[list[int]]) -> dict[str, object]:
    """The calendar the server makes of '*/5 1-3 * * MON-FRI' (as it answered), with changes."""
    base: dict[str, object] = {
        "second": [[0, 0, 1]],
        "minute": [[0, 59, 5]],
        "hour": [[1, 3, 1]],
        "day_of_month": [[1, 31, 1]],
        "month": [[1, 12, 1]],
        "year": [],
        "day_of_week": [[1, 5, 1]],
        "comment": "",
    }
    return base | fields


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5), ("90m", 5400), ("1h30m", 5400), ("7d", 604800), ("0s", 0), (30, 30), ("45", 45), ("1d2h3m4s", 93784)],
)
def test_durations_parse(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 s", "1.5h", "1h 30m", "m", "-5s", "5ms", True, -1])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ScheduleError):
        parse_duration(text)


def test_durations_have_one_written_form() -> None:
    assert [format_duration(s) for s in (0, 5, 60, 5400, 86400, 31536000, 93784)] == ["0s", "5s", "1m", "1h30m", "1d", "365d", "1d2h3m4s"]


def test_cron_fields_expand_to_the_values_they_match() -> None:
    sets = cron_sets("*/15 8-18/5 1,15 JAN,mar-may mon-FRI")
    assert sets["minute"] == {0, 15, 30, 45}
    assert sets["hour"] == {8, 13, 18}
    assert sets["day_of_month"] == {1, 15}
    assert sets["month"] == {1, 3, 4, 5}
    assert sets["day_of_week"] == {1, 2, 3, 4, 5}
    assert cron_sets("0 0 * * 7")["day_of_week"] == {0}  # 7 is Sunday too
    assert cron_sets("5/20 * * * *")["minute"] == {5, 25, 45}


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("* * * *", "4 fields, not five"),
        ("0 0 * * * *", "6 fields, not five"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day_of_month 0 is out of range 1-31"),
        ("0 0 32 * *", "day_of_month 32 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day_of_week 8 is out of range 0-7"),
        ("0 0 * * FUNDAY", "is not a number or a name"),
        ("*/0 * * * *", "step '0' is not a positive number"),
        ("10-5 * * * *", "runs backwards"),
        ("1,,2 * * * *", "empty item"),
        ("@daily", "1 fields, not five"),
    ],
)
def test_bad_cron_expressions_are_named(cron: str, says: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        cron_sets(cron)
    assert says in str(raised.value)


def test_a_good_list_has_no_errors() -> None:
    assert schedule_errors([BALANCES, {"id": "nightly", "workflow": "W", "task_queue": "q", "cron": "0 2 * * *"}]) == []
    assert schedule_errors([{"id": "gone", "state": "absent"}]) == []


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        (BALANCES | {"cron": "0 2 * * *"}, "exactly one of cron and interval"),
        ({k: v for k, v in BALANCES.items() if k != "interval"}, "exactly one of cron and interval"),
        (BALANCES | {"interval": None, "cron": "0 25 * * *"}, "hour 25 is out of range"),
        (BALANCES | {"interval": "soon"}, "interval: 'soon' is not a duration"),
        (BALANCES | {"interval": "0s"}, "interval must be at least 1s"),
        (BALANCES | {"catchup_window": "5s"}, "catchup_window must be at least 10s"),
        (BALANCES | {"overlap": "whenever"}, "overlap 'whenever' is not one of"),
        (BALANCES | {"workflow": ""}, "workflow is required"),
        (BALANCES | {"input": {"a": 1}}, "input must be a list"),
        (BALANCES | {"id": "no spaces"}, "id must be"),
    ],
)
def test_bad_entries_are_named(entry: dict[str, object], says: str) -> None:
    errors = schedule_errors([entry])
    assert any(says in error for error in errors), errors


def test_duplicate_ids_are_refused() -> None:
    assert schedule_errors([BALANCES, BALANCES | {"interval": "7s"}]) == ["schedule 'balances': the id is listed twice"]


def test_the_wanted_form_fills_the_defaults_the_server_has() -> None:
    assert wanted_form(BALANCES) == {
        "workflow": "BalancesWorkflow",
        "task_queue": "sagas",
        "workflow_id": "balances",
        "input": [],
        "cron": None,
        "interval": "5s",
        "overlap": "skip",
        "paused": False,
        "note": "",
        "jitter": "0s",
        "catchup_window": "365d",
    }
    assert wanted_form(BALANCES | {"interval": "300"})["interval"] == "5m"


def test_a_schedule_read_back_as_created_compares_equal() -> None:
    assert described_form(described()) == wanted_form(BALANCES)


def test_a_cron_schedule_read_back_as_a_calendar_compares_equal_by_values() -> None:
    wanted = wanted_form(BALANCES | {"interval": None, "cron": "*/5  1-3 * * MON-FRI"})
    assert wanted["cron"] == "*/5 1-3 * * MON-FRI"
    found = described_form(described(intervals=[], calendars=[calendar()]), wanted["cron"])
    assert found == wanted
    # The same values written otherwise are the same schedule.
    same = wanted_form(BALANCES | {"interval": None, "cron": "0-59/5 1,2,3 * * 1-5"})
    assert described_form(described(intervals=[], calendars=[calendar()]), same["cron"]) == same


def test_a_calendar_that_differs_is_shown_in_cron_syntax() -> None:
    found = described_form(described(intervals=[], calendars=[calendar(hour=[[1, 4, 1]])]), "*/5 1-3 * * MON-FRI")
    assert found["cron"] == "*/5 1-4 * * 1-5"
    seconds = described_form(described(intervals=[], calendars=[calendar(second=[[0, 59, 30]])]), "*/5 1-3 * * MON-FRI")
    assert seconds["cron"] != "*/5 1-3 * * MON-FRI"
    two = described_form(described(intervals=[], calendars=[calendar(), calendar()]), "*/5 1-3 * * MON-FRI")
    assert "2 calendars" in two["cron"]


def test_what_the_server_adds_is_normalised_and_what_it_keeps_is_compared() -> None:
    assert described_form(described(jitter=3, catchup_window=300)) | {"jitter": "0s", "catchup_window": "365d"} == wanted_form(BALANCES)
    assert described_form(described(intervals=[[5, 2]]))["interval"] == "5s offset 2s"
    assert described_form(described(note=None))["note"] == ""


def existing(**changes: object) -> dict[str, object]:
    return {"managed": True, "described": described(**changes)}


def test_plan_creates_what_is_missing() -> None:
    steps = plan([BALANCES], {}, [], prune=True)
    assert (steps["create"], steps["update"], steps["delete"]) == (["balances"], [], [])
    assert steps["after"]["balances"]["interval"] == "5s"


def test_plan_changes_nothing_when_the_server_has_the_list() -> None:
    steps = plan([BALANCES], {"balances": existing()}, ["balances"], prune=True)
    assert (steps["create"], steps["update"], steps["delete"]) == ([], [], [])


@pytest.mark.parametrize(
    "change",
    [
        {"interval": "7s"},
        {"overlap": "buffer_one"},
        {"paused": True},
        {"note": "why"},
        {"input": [{"a": 1}]},
        {"task_queue": "orders"},
        {"workflow_id": "other"},
        {"jitter": "2s"},
        {"catchup_window": "1h"},
    ],
)
def test_plan_updates_in_place_what_differs(change: dict[str, object]) -> None:
    steps = plan([BALANCES | change], {"balances": existing()}, ["balances"], prune=True)
    assert (steps["create"], steps["update"], steps["delete"]) == ([], ["balances"], [])
    before, after = steps["before"]["balances"], steps["after"]["balances"]
    assert [key for key in after if before[key] != after[key]] == [next(iter(change))]


def test_plan_prunes_only_managed_schedules_no_longer_listed() -> None:
    found = {"balances": existing(), "old": existing(workflow_id="old")}
    steps = plan([], found, ["balances", "old"], prune=True)
    assert steps["delete"] == ["balances", "old"]
    assert steps["before"]["old"]["workflow_id"] == "old"
    assert plan([], found, ["balances", "old"], prune=False)["delete"] == []


def test_plan_refuses_an_id_taken_by_a_schedule_made_by_hand() -> None:
    with pytest.raises(ScheduleError, match="not made by this collection"):
        plan([BALANCES], {"balances": {"managed": False, "described": described()}}, [], prune=True)


def test_absent_deletes_a_managed_schedule_and_leaves_one_made_by_hand() -> None:
    gone = {"id": "balances", "state": "absent"}
    assert plan([gone], {"balances": existing()}, [], prune=False)["delete"] == ["balances"]
    steps = plan([gone], {"balances": {"managed": False, "described": described()}}, [], prune=False)
    assert steps["delete"] == [] and "left alone" in steps["warnings"][0]
    assert plan([gone], {}, [], prune=False)["delete"] == []
