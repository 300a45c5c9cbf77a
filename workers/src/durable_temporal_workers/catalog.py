"""Imports every workflow and activity module, so the registry is complete."""

from __future__ import annotations

# Imported for their decorators, which fill the registry.
import durable_temporal_workers.activities.machines
import durable_temporal_workers.activities.orders
import durable_temporal_workers.activities.sagas
import durable_temporal_workers.workflows.loyalty
import durable_temporal_workers.workflows.machines
import durable_temporal_workers.workflows.orders
import durable_temporal_workers.workflows.sagas  # noqa: F401
from durable_temporal_workers.registry import Registry, registry


def load_registry() -> Registry:
    return registry
