"""Strict decoding of workflow inputs: bad input fails the workflow, not its task.

Left to the SDK, a start argument that does not convert to the run method's
type hints (not JSON, a string where an int belongs, a missing field) raises
"Failed decoding arguments" before any workflow code runs. That fails the
workflow *task*, which the server retries for ever: the workflow stays Running
and nothing tells the client why. The SDK also accepts what it can coerce
(``2.5`` or ``true`` as an int quantity) and ignores unknown fields.

:func:`strict_inputs` (applied to every workflow by ``registry.workflow``)
makes the SDK hand the run method, and a ``@workflow.init`` constructor, the
raw payloads instead (``RawValue``, the SDK's public way to skip decoding).
They are decoded against the original type hints and the caps declared in
``models``. Anything wrong fails the workflow on its first task with a
non-retryable ``InvalidInput`` ApplicationError that names each bad field,
before any activity can run. Decoding is pure (no I/O, no clock), so replay
decodes the same history the same way.

Callers (``client.start_workflow(OrderWorkflow.run, order)``, mypy) still see
the typed signature; only the signature the SDK inspects changes.

- :mod:`.strict`: the decorators, and the raw signatures they show the SDK;
- :mod:`.spec`: a run method's (or handler's) parameters, and decoding one call's arguments;
- :mod:`.convert`: a raw payload to JSON, then JSON to the type hints, within the caps;
- :mod:`.problems`: the InvalidInput error and the wording of each problem.
"""

from durable_temporal_workers.workflows.inputs.convert import DEFAULT_CAPS, Caps, parse_json
from durable_temporal_workers.workflows.inputs.problems import (
    INVALID_INPUT,
    MAX_INT,
    MAX_PROBLEMS,
    QUOTE_CHARS,
    invalid_input,
)
from durable_temporal_workers.workflows.inputs.spec import InputSpec
from durable_temporal_workers.workflows.inputs.strict import strict_inputs, strict_update, typed_run

__all__ = [
    "DEFAULT_CAPS",
    "INVALID_INPUT",
    "MAX_INT",
    "MAX_PROBLEMS",
    "QUOTE_CHARS",
    "Caps",
    "InputSpec",
    "invalid_input",
    "parse_json",
    "strict_inputs",
    "strict_update",
    "typed_run",
]
