# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""The options of the modules that connect to a Temporal frontend with the Python SDK."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  address:
    description: The Temporal frontend, C(host:port).
    type: str
    required: true
  namespace:
    description: The namespace to work in.
    type: str
    default: default
  tls:
    description: Connect with TLS (mutual TLS with O(tls_cert_file) and O(tls_key_file)).
    type: bool
    default: false
  tls_ca_file:
    description: CA certificate (PEM, a path on the host) that signed the frontend's certificate; empty trusts the system's CAs.
    type: path
  tls_cert_file:
    description: Client certificate (PEM, a path on the host) for mutual TLS.
    type: path
  tls_key_file:
    description: The client certificate's private key (PEM, a path on the host).
    type: path
  tls_server_name:
    description: The name to check the frontend's certificate against, when it is not the host of O(address).
    type: str
requirements:
  - temporalio (the Temporal Python SDK) in the Python that runs the module, such as the workers' virtualenv
"""
