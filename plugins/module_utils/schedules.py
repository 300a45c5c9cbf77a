# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""Temporal schedules as data: validation, normal forms and the plan that turns what is into what is wanted.

No Temporal import here: the schedule module reads the server and hands plain dicts over, the
schedule_errors filter checks the variable on the controller before any host changes, and the
unit tests exercise both without a server.
"""

from __future__ import annotations

import re
from typing import Any

# The memo key that marks a schedule this collection made; schedules without it are never changed or deleted.
MANAGED_MEMO_KEY = "durable.temporal.managed"

OVERLAP_POLICIES = ("skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all")

# Temporal's own default catch-up window (one year), so a schedule that names none matches the server's.
DEFAULT_CATCHUP_WINDOW = "365d"

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")

# Cron fields in order: name, lowest, highest, names for values.
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day_of_month", 1, 31, {}),
    ("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    # 7 is Sunday too, as in most crons; Temporal stores it as 0.
    ("day_of_week", 0, 7, {name: i for i, name in enumerate(_DAYS)}),
)
_FIELD_RANGE = {field[0]: (field[1], field[2]) for field in CRON_FIELDS}
_FIELD_RANGE["day_of_week"] = (0, 6)
FIELD_NAMES = tuple(_FIELD_RANGE)

_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


class ScheduleError(ValueError):
    """A schedule that cannot be made: bad input, or an id taken by a schedule made by hand."""


def parse_duration(value: Any) -> int:
    """Seconds from an integer or a string such as 5s, 90m, 1h30m or 7d."""
    if isinstance(value, bool):
        raise ScheduleError(f"{value!r} is not a duration")
    if isinstance(value, int):
        if value < 0:
            raise ScheduleError(f"{value!r} is not a duration")
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    match = _DURATION.match(text)
    if not text or not match:
        raise ScheduleError(f"{value!r} is not a duration (such as 30s, 5m, 1h30m, 7d, or a number of seconds)")
    parts = {key: int(number or 0) for key, number in match.groupdict().items()}
    return ((parts["d"] * 24 + parts["h"]) * 60 + parts["m"]) * 60 + parts["s"]


def format_duration(seconds: int) -> str:
    """The one way a duration is shown: 1h30m, 5s, 365d, 0s."""
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def _cron_value(text: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ScheduleError(f"{field} {text!r} is not a number" + (f" or a name ({', '.join(names)})" if names else ""))
    number = int(text)
    if not low <= number <= high:
        raise ScheduleError(f"{field} {number} is out of range {low}-{high}")
    return number


def cron_sets(expression: Any) -> dict[str, frozenset[int]]:
    """The values each field of a five-field cron expression matches; ScheduleError names what is wrong."""
    if not isinstance(expression, str):
        raise ScheduleError(f"cron {expression!r} is not a string")
    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleError(f"cron {expression!r} has {len(fields)} fields, not five (minute hour day-of-month month day-of-week)")
    sets: dict[str, frozenset[int]] = {}
    for text, (field, low, high, names) in zip(fields, CRON_FIELDS):
        values: set[int] = set()
        for item in text.split(","):
            base, _slash, step_text = item.partition("/")
            step = 1
            if step_text:
                if not step_text.isdigit() or int(step_text) < 1:
                    raise ScheduleError(f"cron {expression!r}: {field} step {step_text!r} is not a positive number")
                step = int(step_text)
            if base == "*":
                start, end = low, high
            elif "-" in base:
                first, _dash, last = base.partition("-")
                start = _cron_value(first, field, low, high, names)
                end = _cron_value(last, field, low, high, names)
                if start > end:
                    raise ScheduleError(f"cron {expression!r}: {field} range {base!r} runs backwards")
            elif base:
                start = _cron_value(base, field, low, high, names)
                # a/n means from a to the field's end, every n.
                end = high if step_text else start
            else:
                raise ScheduleError(f"cron {expression!r}: {field} has an empty item")
            values.update(range(start, end + 1, step))
        if field == "day_of_week" and 7 in values:
            values = (values - {7}) | {0}
        sets[field] = frozenset(values)
    return sets


def cron_error(expression: Any) -> str | None:
    try:
        cron_sets(expression)
    except ScheduleError as error:
        return str(error)
    return None


def schedule_errors(schedules: Any) -> list[str]:
    """Everything wrong with a list of wanted schedules, one sentence each; empty when it is good."""
    if not isinstance(schedules, list):
        return [f"the schedules must be a list, not {type(schedules).__name__}"]
    errors: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(schedules):
        if not isinstance(entry, dict):
            errors.append(f"item {index} is not a dict")
            continue
        sid = entry.get("id")
        where = f"schedule {sid!r}" if sid else f"item {index}"
        if not isinstance(sid, str) or not ID_PATTERN.match(sid):
            errors.append(f"{where}: id must be letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
        elif sid in seen:
            errors.append(f"{where}: the id is listed twice")
        else:
            seen.add(sid)
        if entry.get("state", "present") == "absent":
            continue
        for key in ("workflow", "task_queue"):
            if not isinstance(entry.get(key), str) or not entry.get(key):
                errors.append(f"{where}: {key} is required")
        cron, interval = entry.get("cron"), entry.get("interval")
        if (cron in (None, "")) == (interval in (None, "")):
            errors.append(f"{where}: give exactly one of cron and interval")
        elif cron not in (None, ""):
            message = cron_error(cron)
            if message:
                errors.append(f"{where}: {message}")
        else:
            errors.extend(_duration_errors(where, "interval", interval, minimum=1))
        for key, minimum in (("jitter", 0), ("catchup_window", 10)):
            if entry.get(key) not in (None, ""):
                errors.extend(_duration_errors(where, key, entry[key], minimum))
        overlap = entry.get("overlap")
        if overlap not in (None, "") and overlap not in OVERLAP_POLICIES:
            errors.append(f"{where}: overlap {overlap!r} is not one of {', '.join(OVERLAP_POLICIES)}")
        if entry.get("input") is not None and not isinstance(entry.get("input"), list):
            errors.append(f"{where}: input must be a list of the workflow's arguments")
    return errors


def _duration_errors(where: str, key: str, value: Any, minimum: int) -> list[str]:
    try:
        seconds = parse_duration(value)
    except ScheduleError as error:
        return [f"{where}: {key}: {error}"]
    if seconds < minimum:
        return [f"{where}: {key} must be at least {minimum}s"]
    return []


def wanted_form(entry: dict[str, Any]) -> dict[str, Any]:
    """The normal form of a wanted schedule: what is compared with the server's and shown in a diff."""
    cron = entry.get("cron") or None
    interval = entry.get("interval")
    return {
        "workflow": entry["workflow"],
        "task_queue": entry["task_queue"],
        "workflow_id": entry.get("workflow_id") or entry["id"],
        "input": list(entry.get("input") or []),
        "cron": " ".join(cron.split()) if cron else None,
        "interval": format_duration(parse_duration(interval)) if interval not in (None, "") and not cron else None,
        "overlap": entry.get("overlap") or "skip",
        "paused": bool(entry.get("paused", False)),
        "note": entry.get("note") or "",
        "jitter": format_duration(parse_duration(entry.get("jitter") or 0)),
        "catchup_window": format_duration(parse_duration(entry.get("catchup_window") or DEFAULT_CATCHUP_WINDOW)),
    }


def _range_values(ranges: list[Any]) -> frozenset[int]:
    values: set[int] = set()
    for start, end, step in ranges:
        values.update(range(start, max(start, end) + 1, step or 1))
    return frozenset(values)


def _render_field(field: str, ranges: list[Any]) -> str:
    low, high = _FIELD_RANGE[field]
    if _range_values(ranges) == frozenset(range(low, high + 1)):
        return "*"
    items = []
    for start, end, step in ranges:
        end = max(start, end)
        if (start, end) == (low, high):
            items.append(f"*/{step}")
            continue
        text = str(start) if end == start else f"{start}-{end}"
        items.append(text + (f"/{step}" if step and step > 1 and end > start else ""))
    return ",".join(items) or "*"


def described_spec(calendars: list[dict[str, Any]], intervals: list[Any], wanted_cron: str | None) -> tuple[str | None, str | None]:
    """(cron, interval) from the spec the server describes, which holds a cron expression as a calendar.

    A calendar that matches the wanted cron expression value for value is shown as that expression,
    so a schedule made from it compares equal; any other spec is rendered, or marked, so that it differs.
    """
    if intervals and not calendars:
        if len(intervals) == 1 and not intervals[0][1]:
            return None, format_duration(int(intervals[0][0]))
        return None, " + ".join(f"{format_duration(int(every))} offset {format_duration(int(offset))}" for every, offset in intervals)
    if len(calendars) == 1 and not intervals:
        calendar = calendars[0]
        plain = _range_values(calendar.get("second", [])) == frozenset({0}) and not calendar.get("year") and not calendar.get("comment")
        if plain:
            if wanted_cron:
                try:
                    wanted = cron_sets(wanted_cron)
                except ScheduleError:
                    wanted = None
                if wanted is not None and all(_range_values(calendar.get(field, [])) == wanted[field] for field in FIELD_NAMES):
                    return wanted_cron, None
            return " ".join(_render_field(field, calendar.get(field, [])) for field in FIELD_NAMES), None
    return f"a spec this module does not make ({len(calendars)} calendars, {len(intervals)} intervals)", None


def described_form(described: dict[str, Any], wanted_cron: str | None = None) -> dict[str, Any]:
    """The normal form of a schedule as the schedule module reads it from the server (see its _describe)."""
    cron, interval = described_spec(described.get("calendars", []), described.get("intervals", []), wanted_cron)
    return {
        "workflow": described["workflow"],
        "task_queue": described["task_queue"],
        "workflow_id": described["workflow_id"],
        "input": list(described.get("input") or []),
        "cron": cron,
        "interval": interval,
        "overlap": described["overlap"],
        "paused": bool(described["paused"]),
        "note": described.get("note") or "",
        "jitter": format_duration(int(described.get("jitter") or 0)),
        "catchup_window": format_duration(int(described.get("catchup_window") or 0)),
    }


def plan(wanted: list[dict[str, Any]], existing: dict[str, dict[str, Any]], managed_ids: list[str], prune: bool) -> dict[str, Any]:
    """What to create, update and delete, with the before and after of each schedule touched or kept.

    wanted: the validated entries; existing: per listed id found on the server, {managed, described};
    managed_ids: every schedule on the server that carries the collection's memo key.
    Raises ScheduleError, before any change, for a wanted id taken by a schedule made by hand.
    """
    result: dict[str, Any] = {"create": [], "update": [], "delete": [], "before": {}, "after": {}, "warnings": []}
    listed = set()
    for entry in wanted:
        sid = entry["id"]
        listed.add(sid)
        found = existing.get(sid)
        if entry.get("state", "present") == "absent":
            if found is None:
                continue
            if not found["managed"]:
                result["warnings"].append(f"schedule {sid!r} was not made by this collection (no {MANAGED_MEMO_KEY} memo): left alone")
                continue
            result["delete"].append(sid)
            result["before"][sid] = described_form(found["described"])
            continue
        after = wanted_form(entry)
        result["after"][sid] = after
        if found is None:
            result["create"].append(sid)
            continue
        if not found["managed"]:
            raise ScheduleError(
                f"schedule {sid!r} exists but was not made by this collection (no {MANAGED_MEMO_KEY} memo); "
                "delete it by hand or give the schedule another id"
            )
        before = described_form(found["described"], after["cron"])
        result["before"][sid] = before
        if before != after:
            result["update"].append(sid)
    if prune:
        for sid in sorted(set(managed_ids) - listed):
            result["delete"].append(sid)
            found = existing.get(sid)
            result["before"][sid] = described_form(found["described"]) if found else {}
    return result
