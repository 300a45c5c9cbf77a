"""How the SDK is made to hand a workflow its input raw, to be decoded by :class:`InputSpec`.

``RawValue`` is the SDK's public way to skip decoding: the SDK decodes an
argument to the type hint it is shown, so the wrappers here are shown
``RawValue`` hints while ``__wrapped__`` keeps the typed original for callers.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.common import RawValue

from durable_temporal_workers.workflows.inputs.spec import InputSpec, Param

T = typing.TypeVar("T", bound=type)
H = typing.TypeVar("H", bound=Callable[..., Any])


def strict_inputs(cls: T, workflow_name: str) -> T:
    """Make ``cls.run`` (and a ``@workflow.init`` ``__init__``) decode their input here.

    Call before ``@workflow.defn``, which reads the signatures this changes.
    """
    run = vars(cls)["run"]
    spec = InputSpec(workflow_name, run)
    # Only the required parameters: the usual start (optional ones left out)
    # then arrives raw, even when it is not JSON at all.
    run_raw = _decoding(run, spec, spec.required, spec.return_hint)
    setattr(cls, "run", run_raw)  # noqa: B010 - mypy knows no `run` on a type variable

    init = vars(cls).get("__init__")
    if init is not None and hasattr(init, "__temporal_workflow_init"):
        # The SDK passes the constructor the same arguments as run, and
        # requires the two signatures to match.
        setattr(cls, "__init__", _decoding(init, spec, spec.required, None))  # noqa: B010
    return cls


def typed_run(run: Callable[..., Any]) -> Callable[..., Any]:
    """The original, typed run method behind :func:`strict_inputs`."""
    original: Callable[..., Any] = getattr(run, "__wrapped__", run)
    return original


def strict_update(update_name: str) -> Callable[[H], H]:
    """Decode the arguments of an update handler, and of its validator, like start input.

    Put it under ``@workflow.update`` and under ``@handler.validator``. Left to
    the SDK, ``2.5`` or ``true`` pass as an int, and a number too big for the
    store passes too, and the handler keeps it in workflow state (a continue-as-new
    input would then be refused). Here the validator rejects the update instead,
    with the same InvalidInput error as a bad start, so nothing reaches the
    history; the handler gets the same typed values. Not for signals: an error in
    a signal handler fails the whole workflow.
    """

    def decorate(fn: H) -> H:
        spec = InputSpec(update_name, fn)
        # Every parameter: with fewer hints than arguments sent, the SDK would drop
        # the rest (an update's usual call sends its optional arguments).
        return typing.cast(H, _decoding(fn, spec, spec.params, spec.return_hint))

    return decorate


def _decoding(
    fn: Callable[..., Any], spec: InputSpec, params: Sequence[Param], return_hint: Any
) -> Callable[..., Any]:
    """``fn``, shown to the SDK as taking ``params`` raw, with its arguments decoded by ``spec``."""
    wrapper: Callable[..., Any]
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def wrapper(self: Any, *args: Any) -> Any:
            return await fn(self, *spec.decode(args))

    else:

        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any) -> Any:
            return fn(self, *spec.decode(args))

    signature, hints = _raw_presentation(params)
    _present(wrapper, signature, {**hints, "return": return_hint})
    return wrapper


def _raw_presentation(params: Sequence[Param]) -> tuple[inspect.Signature, dict[str, Any]]:
    """The signature and hints the SDK is shown so that it hands ``params`` over raw.

    The SDK uses the hints only when it has one per argument sent; otherwise it
    decodes plain JSON, which :meth:`InputSpec.decode` checks the same way.
    """
    signature = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [
            inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=RawValue)
            for p in params
        ]
    )
    return signature, {p.name: RawValue for p in params}


def _present(fn: Callable[..., Any], signature: inspect.Signature, hints: dict[str, Any]) -> None:
    # What inspect.signature and typing.get_type_hints report, hence what the
    # SDK uses to decode; __wrapped__ (from functools.wraps) keeps the
    # original reachable for typed_run.
    fn.__signature__ = signature  # type: ignore[attr-defined]
    fn.__annotations__ = hints
