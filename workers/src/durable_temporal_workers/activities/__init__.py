"""Activities: the code that touches the outside world, run by workers only."""

from __future__ import annotations

import hashlib

from temporalio import activity


def effect_key(step: str | None = None) -> str:
    """Idempotency key of this activity's side effect: ``<workflow id>:<step>``.

    The same on every retry of the same step, so the store applies it once.
    """
    info = activity.info()
    return f"{info.workflow_id}:{step or info.activity_type}"


def reference(prefix: str, key: str) -> str:
    """A stable confirmation code derived from an idempotency key."""
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:10].upper()}"
