# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""Puts several files, directories and links in place with one remote read when nothing changes.

A converged host used to cost one or two remote calls per file (a template is a stat and a file
call), each a fresh Python on the host. Here one host_state call reads every path; only the
entries that differ are written, with the standard copy and file modules, as the copy action
would: the content goes to a remote temporary directory, and the copy module checks it, runs
the validator and moves it into place.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.hashing import checksum as local_checksum
from ansible.utils.hashing import checksum_s

_STATES = ("file", "directory", "link", "absent")
_ENTRY_KEYS = frozenset(("path", "state", "content", "src", "owner", "group", "mode", "validate", "force"))
_ATTRIBUTES = ("owner", "group", "mode")
_OCTAL_MODE = re.compile(r"0?[0-7]{3,4}")


class ActionModule(ActionBase):
    # No remote temporary directory up front (three extra calls): one is made when a file is written.
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("files",))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        self._staging: str | None = None
        self._local_copies: list[str] = []
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
            for local in self._local_copies:
                self._loader.cleanup_tmp_file(local)
            # A directory made by a module run without pipelining goes in cleanup(), after run().
            if self._staging is not None:
                self._remove_tmp_path(self._staging)

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
            # As the copy action: searched in files/, a vaulted file decrypted to a local temporary copy.
            local = self._loader.get_real_file(self._find_needle("files", entry["src"]), decrypt=True)
            self._local_copies.append(local)
            entry["local"] = local
            entry["expected_checksum"] = local_checksum(local)
        return entry

    @staticmethod
    def _attributes_in_place(entry: dict[str, Any], found: dict[str, Any]) -> bool:
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

    @classmethod
    def _in_place(cls, entry: dict[str, Any], found: dict[str, Any]) -> bool:
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
            return found.get("link_target") == entry["src"] and not (set(entry) & set(_ATTRIBUTES))
        if "expected_checksum" in entry and found.get("checksum") != entry["expected_checksum"]:
            return False
        return cls._attributes_in_place(entry, found)

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
            outcome = self._put(entry, before, task_vars)
            report[path] = {"changed": bool(outcome.get("changed")), "before": before}
            for diff in outcome.get("diffs", []):
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

    def _put(self, entry: dict[str, Any], before: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        """Brings one entry in place with the standard module, as a task of its own would have."""
        attributes = {key: entry[key] for key in _ATTRIBUTES if entry.get(key) is not None}
        content_differs = "expected_checksum" in entry and not (
            before.get("type") == "file" and before.get("checksum") == entry["expected_checksum"]
        )
        if content_differs:
            outcome = self._write(entry, before, attributes, task_vars)
        else:
            args = dict(attributes, path=entry["path"], state=entry["state"])
            for key in ("src", "force"):
                if key in entry and not (key == "src" and entry["state"] == "file"):
                    args[key] = entry[key]
            outcome = self._execute_module(module_name="ansible.legacy.file", module_args=args, task_vars=task_vars)
        outcome.setdefault("diffs", [])
        if outcome.get("diff"):
            outcome["diffs"].append(outcome.pop("diff"))
        return outcome

    def _write(
        self, entry: dict[str, Any], before: dict[str, Any], attributes: dict[str, Any], task_vars: dict[str, Any]
    ) -> dict[str, Any]:
        """New content: diffed, then (outside check mode) staged on the host and moved in by the copy module."""
        path = entry["path"]
        if before.get("type") == "directory":
            # The copy module would write into it; an entry names the file itself.
            return {"failed": True, "msg": "is a directory, not a file"}
        diffs: list[Any] = []
        if self._task.diff:
            # The peek and the slurp of the copy action; no_log blanks both sides of the diff.
            if "content" in entry:
                diff = self._get_diff_data(path, entry["content"], task_vars, source_file=False)
                if "after_header" in diff:
                    diff["after_header"] = path
            else:
                diff = self._get_diff_data(path, entry["local"], task_vars)
            diffs.append(diff)
        if self._task.check_mode:
            return {"changed": True, "diffs": diffs}

        if self._staging is None:
            # Without pipelining a module run has made a remote directory already: one is enough.
            self._remove_tmp_path(None)
            self._staging = self._make_tmp_path()
        # The suffix stays, as copy keeps it, for checkers that go by the file's extension.
        staged = posixpath.join(self._staging, "source-%s%s" % (checksum_s(path)[:12], posixpath.splitext(path)[1]))
        if "content" in entry:
            self._transfer_data(staged, entry["content"])
        else:
            self._transfer_file(entry["local"], staged)
        self._fixup_perms2((self._staging, staged))
        args = dict(attributes, src=staged, dest=path, checksum=entry["expected_checksum"])
        args["_original_basename"] = os.path.basename(path)
        if "validate" in entry:
            args["validate"] = entry["validate"]
        outcome = self._execute_module(module_name="ansible.legacy.copy", module_args=args, task_vars=task_vars)
        outcome["diffs"] = diffs
        return outcome
