# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""Read-only looks at a host, shared by the host_state module and the files action."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from typing import Any


def owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def read_path(module: Any, path: str, with_checksum: bool) -> dict[str, Any]:
    """Type, owner, group and mode of a path (links not followed), a directory's entries, a file's SHA-1 if asked."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"exists": False}
    info: dict[str, Any] = {
        "exists": True,
        "owner": owner_name(st.st_uid),
        "group": group_name(st.st_gid),
        "mode": "%04o" % stat.S_IMODE(st.st_mode),
    }
    if stat.S_ISLNK(st.st_mode):
        info.update(type="link", link_target=os.readlink(path))
    elif stat.S_ISDIR(st.st_mode):
        info.update(type="directory", entries=sorted(os.listdir(path)))
    elif stat.S_ISREG(st.st_mode):
        info.update(type="file", size=st.st_size)
        if with_checksum:
            info["checksum"] = module.sha1(path)
    else:
        info["type"] = "other"
    return info


def read_paths(module: Any, paths: list[str], checksum: list[str]) -> dict[str, Any]:
    wanted = set(checksum)
    return {path: read_path(module, path, path in wanted) for path in paths}
