#!/usr/bin/python
# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""Temporal schedules as code: creates, updates and deletes schedules so the server holds the listed ones."""

from __future__ import annotations

DOCUMENTATION = r"""
module: schedule
short_description: Keep a list of Temporal schedules on the server, as code
description:
  - Makes the Temporal schedules of a namespace what O(schedules) lists, through the Temporal Python SDK.
  - A listed schedule that is missing is created; one whose workflow, task queue, workflow id, input, cron expression or
    interval, overlap policy, paused state, note, jitter or catch-up window differs is updated in place, keeping its id
    and its history; with O(prune), a schedule this module made that is no longer listed is deleted.
  - Every schedule the module creates carries the memo key C(durable.temporal.managed). Schedules without it, made by
    hand or by another tool, are never updated or deleted; a listed id taken by one of them fails the task before any change.
  - The server stores a cron expression as a calendar. The module compares the values each field matches, so C(MON-FRI)
    and C(1-5) are the same schedule; a calendar that differs is shown in cron syntax in the diff.
  - Everything is read and checked before the first change, so bad input or a taken id changes nothing.
  - Runs on a host whose Python has the C(temporalio) package, such as the virtualenv of the workers (set
    C(ansible_python_interpreter) to its C(bin/python)), as the M(durable.temporal.schedule) task of the worker role does.
version_added: 0.1.0
author: durable.temporal maintainers (@durable)
extends_documentation_fragment:
  - durable.temporal.temporal_client
options:
  schedules:
    description:
      - The schedules, each starting one workflow.
      - Ids are unique; each schedule has exactly one of O(schedules[].cron) and O(schedules[].interval).
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description: The schedule id.
        type: str
        required: true
      state:
        description: C(absent) deletes the schedule (when this module made it).
        type: str
        choices: [present, absent]
        default: present
      workflow:
        description: The workflow type to start.
        type: str
      task_queue:
        description: The task queue the workflow runs on.
        type: str
      workflow_id:
        description: The id of the workflows started, to which the server appends the time of the start; defaults to the schedule id.
        type: str
      input:
        description: The workflow's arguments, in order, as JSON values; empty for none.
        type: list
        elements: raw
        default: []
      cron:
        description:
          - A five-field cron expression (minute, hour, day of month, month, day of week) in UTC, with C(*), C(,), C(-), C(/)
            and names for months and days, such as C(*/15 8-18 * * MON-FRI).
          - Mutually exclusive with O(schedules[].interval).
        type: str
      interval:
        description:
          - Start a workflow every this long, such as C(30s), C(5m), C(1h30m), C(1d), or a number of seconds.
          - Mutually exclusive with O(schedules[].cron).
        type: str
      overlap:
        description: What happens when a start is due while the previous workflow still runs (Temporal's overlap policy).
        type: str
        choices: [skip, buffer_one, buffer_all, cancel_other, terminate_other, allow_all]
        default: skip
      paused:
        description: The schedule is paused.
        type: bool
        default: false
      note:
        description: The note shown with the schedule (why it is paused, say).
        type: str
        default: ""
      jitter:
        description: Delay each start by a random time up to this long.
        type: str
        default: 0s
      catchup_window:
        description: How late a start missed while the server was down may still happen; Temporal's default is one year.
        type: str
        default: 365d
  prune:
    description: Delete the schedules this module made (memo C(durable.temporal.managed)) that O(schedules) no longer lists.
    type: bool
    default: false
  record:
    description:
      - A file on the host that says schedules made by this module may be on the server. It is written before the first
        change of a run that lists a schedule to keep, and removed after a run with O(prune) that lists none, which
        deleted them all. Never touched in check mode.
      - A caller with no schedules to list can skip the module, and its call to the server, where the file is absent.
    type: path
attributes:
  check_mode:
    description: Reads the server and reports what would be created, updated and deleted, changing nothing.
    support: full
  diff_mode:
    description: Shows each schedule touched before and after, in the form of O(schedules).
    support: full
notes:
  - The module makes one connection per run and one call per schedule it reads or changes.
seealso:
  - name: Temporal schedules
    description: What a schedule is and how its policies behave.
    link: https://docs.temporal.io/schedule
"""

EXAMPLES = r"""
- name: Keep the nightly report and the balances check scheduled
  durable.temporal.schedule:
    address: 127.0.0.1:7233
    schedules:
      - id: nightly-report
        workflow: ReportWorkflow
        task_queue: reports
        input: [{"format": "pdf"}]
        cron: "0 2 * * *"
        catchup_window: 1h
      - id: balances-check
        workflow: BalancesWorkflow
        task_queue: sagas
        interval: 10m
        overlap: buffer_one
    prune: true
  vars:
    ansible_python_interpreter: /opt/temporal-workers/venv/bin/python

- name: Pause a schedule, with a note
  durable.temporal.schedule:
    address: temporal.example.com:7233
    tls: true
    tls_ca_file: /etc/temporal-workers/tls/ca.pem
    tls_cert_file: /etc/temporal-workers/tls/worker.pem
    tls_key_file: /etc/temporal-workers/tls/worker.key
    schedules:
      - id: nightly-report
        workflow: ReportWorkflow
        task_queue: reports
        cron: "0 2 * * *"
        paused: true
        note: paused during the migration
  vars:
    ansible_python_interpreter: /opt/temporal-workers/venv/bin/python
"""

RETURN = r"""
created:
  description: Ids of the schedules created (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [nightly-report]
updated:
  description: Ids of the schedules updated in place.
  returned: always
  type: list
  elements: str
  sample: [balances-check]
deleted:
  description: Ids of the schedules deleted.
  returned: always
  type: list
  elements: str
  sample: []
schedules:
  description: Per listed id, the schedule as it is after the run, in the normal form the module compares.
  returned: always
  type: dict
  sample:
    balances-check:
      workflow: BalancesWorkflow
      task_queue: sagas
      workflow_id: balances-check
      input: []
      cron: null
      interval: 10m
      overlap: buffer_one
      paused: false
      note: ""
      jitter: 0s
      catchup_window: 365d
"""

import asyncio
import os
import traceback
from datetime import timedelta
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.durable.temporal.plugins.module_utils.schedules import (
    MANAGED_MEMO_KEY,
    ScheduleError,
    cron_sets,
    parse_duration,
    plan,
    schedule_errors,
    wanted_form,
)
from ansible_collections.durable.temporal.plugins.module_utils.temporal_client import CONNECTION_SPEC, connect

try:
    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleIntervalSpec,
        ScheduleOverlapPolicy,
        SchedulePolicy,
        ScheduleSpec,
        ScheduleState,
        ScheduleUpdate,
    )
    from temporalio.service import RPCError, RPCStatusCode
except ImportError:
    TEMPORALIO_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    TEMPORALIO_IMPORT_ERROR = None

SCHEDULE_SPEC = {
    "id": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "workflow": {"type": "str"},
    "task_queue": {"type": "str"},
    "workflow_id": {"type": "str"},
    "input": {"type": "list", "elements": "raw", "default": []},
    "cron": {"type": "str"},
    "interval": {"type": "str"},
    "overlap": {"type": "str", "choices": ["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"], "default": "skip"},
    "paused": {"type": "bool", "default": False},
    "note": {"type": "str", "default": ""},
    "jitter": {"type": "str", "default": "0s"},
    "catchup_window": {"type": "str", "default": "365d"},
}

ARGUMENT_SPEC = {
    **CONNECTION_SPEC,
    "schedules": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": SCHEDULE_SPEC,
        "mutually_exclusive": [["cron", "interval"]],
    },
    "prune": {"type": "bool", "default": False},
    "record": {"type": "path"},
}


def _seconds(value: timedelta | None) -> int:
    return int(value.total_seconds()) if value else 0


def _ranges(ranges: Any) -> list[list[int]]:
    return [[r.start, r.end, r.step] for r in ranges]


async def _describe(client: Any, sid: str) -> dict[str, Any] | None:
    """The schedule as plain data (see module_utils.schedules.described_form), or None when there is none."""
    try:
        description = await client.get_schedule_handle(sid).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    schedule = description.schedule
    action = schedule.action
    spec = schedule.spec
    memo = description.raw_description.memo.fields
    try:
        arguments = await client.data_converter.decode(list(action.args)) if action.args else []
    except Exception:  # an argument in an encoding the default converter does not read: shown, and differs
        arguments = ["<undecodable input>"]
    calendars = [
        {
            "second": _ranges(c.second),
            "minute": _ranges(c.minute),
            "hour": _ranges(c.hour),
            "day_of_month": _ranges(c.day_of_month),
            "month": _ranges(c.month),
            "year": _ranges(c.year),
            "day_of_week": _ranges(c.day_of_week),
            "comment": c.comment or "",
        }
        for c in spec.calendars
    ]
    intervals = [[_seconds(i.every), _seconds(i.offset)] for i in spec.intervals]
    # Cron strings the server keeps as given (it converts them on write) would not compare: mark them.
    if spec.cron_expressions:
        calendars.append({"comment": "cron: " + "; ".join(spec.cron_expressions)})
    return {
        "managed": MANAGED_MEMO_KEY in memo,
        "described": {
            "workflow": getattr(action, "workflow", "<not a workflow start>"),
            "task_queue": getattr(action, "task_queue", ""),
            "workflow_id": getattr(action, "id", ""),
            "input": arguments,
            "calendars": calendars,
            "intervals": intervals,
            "overlap": schedule.policy.overlap.name.lower(),
            "paused": schedule.state.paused,
            "note": schedule.state.note or "",
            "jitter": _seconds(spec.jitter),
            "catchup_window": _seconds(schedule.policy.catchup_window),
        },
    }


def _schedule(form: dict[str, Any]) -> Any:
    """The SDK's Schedule for a wanted schedule's normal form."""
    if form["cron"]:
        spec = ScheduleSpec(cron_expressions=[form["cron"]], jitter=timedelta(seconds=parse_duration(form["jitter"])))
    else:
        spec = ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=parse_duration(form["interval"])))],
            jitter=timedelta(seconds=parse_duration(form["jitter"])),
        )
    return Schedule(
        action=ScheduleActionStartWorkflow(form["workflow"], args=form["input"], id=form["workflow_id"], task_queue=form["task_queue"]),
        spec=spec,
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy[form["overlap"].upper()],
            catchup_window=timedelta(seconds=parse_duration(form["catchup_window"])),
        ),
        state=ScheduleState(note=form["note"], paused=form["paused"]),
    )


def _write_record(path: str, params: dict[str, Any]) -> None:
    """The record the role reads to know that pruning may be left to do; written once, before any change."""
    if os.path.exists(path):
        return
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"Temporal schedules made from this host may be in namespace {params['namespace']} at {params['address']}.\n")


async def _managed_ids(client: Any) -> list[str]:
    ids = []
    async for entry in await client.list_schedules():
        if MANAGED_MEMO_KEY in entry.raw_entry.memo.fields:
            ids.append(entry.id)
    return ids


async def _run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    wanted = params["schedules"]
    client = await connect(params)
    managed_ids = await _managed_ids(client) if params["prune"] else []
    to_read = [entry["id"] for entry in wanted] + [sid for sid in managed_ids if sid not in {e["id"] for e in wanted}]
    existing = {}
    for sid in to_read:
        found = await _describe(client, sid)
        if found is not None:
            existing[sid] = found
    steps = plan(wanted, existing, managed_ids, params["prune"])
    for warning in steps["warnings"]:
        module.warn(warning)
    changed = bool(steps["create"] or steps["update"] or steps["delete"])
    keeps = any(entry["state"] == "present" for entry in wanted)
    if params["record"] and keeps and not module.check_mode:
        _write_record(params["record"], params)
    if changed and not module.check_mode:
        for sid in steps["create"]:
            await client.create_schedule(sid, _schedule(steps["after"][sid]), memo={MANAGED_MEMO_KEY: True})
        for sid in steps["update"]:
            new = _schedule(steps["after"][sid])
            await client.get_schedule_handle(sid).update(lambda _input, new=new: ScheduleUpdate(schedule=new))
        for sid in steps["delete"]:
            await client.get_schedule_handle(sid).delete()
    if params["record"] and params["prune"] and not keeps and not module.check_mode and os.path.lexists(params["record"]):
        os.remove(params["record"])
    touched = set(steps["create"] + steps["update"] + steps["delete"])
    result: dict[str, Any] = {
        "changed": changed,
        "created": steps["create"],
        "updated": steps["update"],
        "deleted": steps["delete"],
        "schedules": steps["after"],
    }
    if module._diff:
        result["diff"] = {
            "before": {"schedules": {sid: steps["before"].get(sid) for sid in sorted(touched)}},
            "after": {"schedules": {sid: steps["after"].get(sid) for sid in sorted(touched)}},
        }
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    errors = schedule_errors(module.params["schedules"])
    if errors:
        module.fail_json(msg="Invalid schedules: " + "; ".join(errors), errors=errors)
    if TEMPORALIO_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("temporalio"), exception=TEMPORALIO_IMPORT_ERROR)
    # Normal forms of every listed schedule, so a value the server would refuse fails here, before any change.
    try:
        for entry in module.params["schedules"]:
            if entry["state"] == "present":
                wanted_form(entry)
                if entry["cron"]:
                    cron_sets(entry["cron"])
        result = asyncio.run(_run(module))
    except ScheduleError as error:
        module.fail_json(msg=str(error))
    except RPCError as error:
        module.fail_json(msg=f"Temporal at {module.params['address']} answered {error.status.name}: {error.message}")
    except (OSError, RuntimeError) as error:
        module.fail_json(msg=f"Cannot reach Temporal at {module.params['address']}: {error}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
