# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""Puts several files, directories and links in place with one remote read when nothing changes.

A converged host used to cost one or two remote calls per file (a template is a stat and a file
call), each a fresh Python on the host. Here one host_state call reads every path; only the
entries that differ go to the standard copy and file modules, which do the writing.
"""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.hashing import checksum as local_checksum
from ansible.utils.hashing import checksum_s

_STATES = ("file", "directory", "link", "absent")
_ENTRY_KEYS = frozenset(("path", "state", "content", "src", "owner", "group", "mode", "validate", "force"))
_OCTAL_MODE = re.compile(r"0?[0-7]{3,4}")


class ActionModule(ActionBase):
    # No remote temporary directory up front (three extra calls): copy makes its own when it writes.
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("files",))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        try:
            entries = [self._entry(raw, index) for index, raw in enumerate(self._task.args.get("files") or [])]
            read = self._execute_module(
                module_name="durable.temporal.host_state",
                module_args={
                    "paths": [entry["path"] for entry in entries],
                    "checksum": [entry["path"] for entry in entries if "expected_checksum" in entry],
                },
                task_vars=task_vars,
            )
            if read.get("failed"):
                return dict(result, failed=True, msg="Reading the paths failed: %s" % read.get("msg", read))
            return self._apply(result, entries, read["paths"], task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def _entry(self, raw: Any, index: int) -> dict[str, Any]:
        """Checks one entry before anything is read or changed, and works out what it should be."""
        if not isinstance(raw, dict):
            raise AnsibleActionFail("files[%d] must be a dictionary, got %s" % (index, type(raw).__name__))
        unknown = sorted(set(raw) - _ENTRY_KEYS)
        if unknown:
            raise AnsibleActionFail("files[%d] has unknown keys: %s" % (index, ", ".join(unknown)))
        path = raw.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise AnsibleActionFail("files[%d].path must be an absolute path, got %r" % (index, path))
        entry = dict(raw, state=raw.get("state") or "file")
        if not entry.get("validate"):
            # '' means no checker, so that a role can leave it out with a condition.
            entry.pop("validate", None)
        state = entry["state"]
        if state not in _STATES:
            raise AnsibleActionFail("%s: state must be one of %s, got %r" % (path, ", ".join(_STATES), state))
        if "content" in entry and "src" in entry:
            raise AnsibleActionFail("%s: content and src are mutually exclusive" % path)
        if state == "link" and not entry.get("src"):
            raise AnsibleActionFail("%s: a link needs src, its target" % path)
        if state != "file" and "content" in entry:
            raise AnsibleActionFail("%s: content needs state file, not %s" % (path, state))
        if state == "file" and "content" in entry:
            if not isinstance(entry["content"], str):
                raise AnsibleActionFail("%s: content must be a string" % path)
            entry["expected_checksum"] = checksum_s(entry["content"])
        elif state == "file" and "src" in entry:
            local = self._find_needle("files", entry["src"])
            entry["expected_checksum"] = local_checksum(local)
        return entry

    @staticmethod
    def _in_place(entry: dict[str, Any], found: dict[str, Any]) -> bool:
        """True only when the standard module, given this entry, would change nothing."""
        state = entry["state"]
        if state == "absent":
            return not found.get("exists")
        if not found.get("exists"):
            return False
        wanted_type = {"file": "file", "directory": "directory", "link": "link"}[state]
        if found.get("type") != wanted_type:
            return False
        if state == "link":
            # The file module sets a link's owner with lchown; an entry asking for one is handed over.
            return found.get("link_target") == entry["src"] and not (set(entry) & {"owner", "group", "mode"})
        if "expected_checksum" in entry and found.get("checksum") != entry["expected_checksum"]:
            return False
        for key in ("owner", "group"):
            if key in entry and entry[key] is not None and to_text(entry[key]) != found.get(key):
                return False
        mode = entry.get("mode")
        if mode is not None:
            if not isinstance(mode, str) or not _OCTAL_MODE.fullmatch(mode):
                return False
            if int(mode, 8) != int(found.get("mode", "-1"), 8):
                return False
        return True

    def _apply(
        self, result: dict[str, Any], entries: list[dict[str, Any]], found: dict[str, Any], task_vars: dict[str, Any]
    ) -> dict[str, Any]:
        report: dict[str, Any] = {}
        diffs: list[Any] = []
        result.update(changed=False, files=report)
        for entry in entries:
            path = entry["path"]
            before = found.get(path, {"exists": False})
            if self._in_place(entry, before):
                report[path] = {"changed": False, "before": before}
                continue
            outcome = self._hand_over(entry, task_vars)
            report[path] = {"changed": bool(outcome.get("changed")), "before": before}
            diff = outcome.get("diff")
            if diff:
                diffs.extend(diff if isinstance(diff, list) else [diff])
            if outcome.get("failed"):
                result.update(failed=True, msg="%s: %s" % (path, outcome.get("msg", "failed")))
                for key in ("stdout", "stderr", "exception"):
                    if key in outcome:
                        result[key] = outcome[key]
                break
            result["changed"] = result["changed"] or report[path]["changed"]
        if diffs:
            result["diff"] = diffs
        return result

    def _hand_over(self, entry: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        """Runs the standard module for one entry, as a task of its own would have."""
        attributes = {key: entry[key] for key in ("owner", "group", "mode") if entry.get(key) is not None}
        if entry["state"] == "file" and ("content" in entry or "src" in entry):
            args = dict(attributes, dest=entry["path"])
            for key in ("content", "src", "validate"):
                if key in entry:
                    args[key] = entry[key]
            task = self._task.copy()
            task.args = args
            copy = self._shared_loader_obj.action_loader.get(
                "ansible.legacy.copy",
                task=task,
                connection=self._connection,
                play_context=self._play_context,
                loader=self._loader,
                templar=self._templar,
                shared_loader_obj=self._shared_loader_obj,
            )
            return copy.run(task_vars=task_vars)
        args = dict(attributes, path=entry["path"], state=entry["state"])
        for key in ("src", "force"):
            if key in entry:
                args[key] = entry[key]
        return self._execute_module(module_name="ansible.legacy.file", module_args=args, task_vars=task_vars)
