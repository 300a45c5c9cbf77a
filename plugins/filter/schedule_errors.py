# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""The check of a list of Temporal schedules that roles run before any host changes."""

from __future__ import annotations

DOCUMENTATION = r"""
name: schedule_errors
short_description: What is wrong with a list of Temporal schedules
version_added: 0.1.0
description:
  - The checks M(durable.temporal.schedule) makes of its O(durable.temporal.schedule#module:schedules), on the controller,
    so a role can stop the play before any host changes.
  - Ids unique and well formed; O(durable.temporal.schedule#module:schedules[].workflow) and
    O(durable.temporal.schedule#module:schedules[].task_queue) given; exactly one of a cron expression (five fields, each value
    in its range) and an interval; durations, the overlap policy and the input well formed.
positional: _input
options:
  _input:
    description: The schedules, as M(durable.temporal.schedule) takes them.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Check the schedules before changing anything
  ansible.builtin.assert:
    that: temporal_worker_schedules | durable.temporal.schedule_errors | length == 0
    fail_msg: "Invalid temporal_worker_schedules: {{ temporal_worker_schedules | durable.temporal.schedule_errors | join('; ') }}"
"""

RETURN = r"""
_value:
  description: One sentence per problem, naming the schedule; empty when the list is good.
  type: list
  elements: str
"""

from ansible_collections.durable.temporal.plugins.module_utils.schedules import schedule_errors


class FilterModule:
    def filters(self):
        return {"schedule_errors": schedule_errors}
