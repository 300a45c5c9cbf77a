"""What activity classes are built with, once per worker process."""

from __future__ import annotations

from dataclasses import dataclass

from durable_temporal_workers.faults import FaultInjector
from durable_temporal_workers.store import Store


@dataclass(frozen=True)
class ActivityDeps:
    store: Store
    faults: FaultInjector
