# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""A Temporal client from the connection options every such module shares (doc fragment temporal_client)."""

from __future__ import annotations

from typing import Any

CONNECTION_SPEC: dict[str, dict[str, Any]] = {
    "address": {"type": "str", "required": True},
    "namespace": {"type": "str", "default": "default"},
    "tls": {"type": "bool", "default": False},
    "tls_ca_file": {"type": "path"},
    "tls_cert_file": {"type": "path"},
    "tls_key_file": {"type": "path"},
    "tls_server_name": {"type": "str"},
}


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as handle:
        return handle.read()


async def connect(params: dict[str, Any]) -> Any:
    """A client of O(namespace) at O(address), with mutual TLS from the files the options name."""
    # Imported here: the module reports a missing temporalio itself, with missing_required_lib.
    from temporalio.client import Client
    from temporalio.service import TLSConfig

    tls: Any = False
    if params["tls"]:
        tls = TLSConfig(
            server_root_ca_cert=_read(params["tls_ca_file"]),
            client_cert=_read(params["tls_cert_file"]),
            client_private_key=_read(params["tls_key_file"]),
            domain=params["tls_server_name"] or None,
        )
    return await Client.connect(params["address"], namespace=params["namespace"], tls=tls)
