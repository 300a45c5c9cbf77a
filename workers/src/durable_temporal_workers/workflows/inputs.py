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
They are decoded here against the original type hints and the caps declared
in ``models``. Anything wrong fails the workflow on its first task with a
non-retryable ``InvalidInput`` ApplicationError that names each bad field,
before any activity can run. Decoding is pure (no I/O, no clock), so replay
decodes the same history the same way.

Callers (``client.start_workflow(OrderWorkflow.run, order)``, mypy) still see
the typed signature; only the signature the SDK inspects changes.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from durable_temporal_workers.models import (
    MAX_ID_LENGTH,
    MAX_ITEMS,
    MAX_ITEMS_KEY,
    MAX_LENGTH,
    MAXIMUM,
    MINIMUM,
)

INVALID_INPUT = "InvalidInput"
# Problems listed in one error; the rest are counted.
MAX_PROBLEMS = 10
# Integers must fit the store's 64-bit columns.
MAX_INT = 2**63 - 1
# How much of a bad value an error message quotes.
QUOTE_CHARS = 40

T = typing.TypeVar("T", bound=type)
H = typing.TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class Caps:
    max_length: int | None = MAX_ID_LENGTH
    max_items: int | None = MAX_ITEMS
    # Bounds of an integer, or of the integers in a list or object.
    minimum: int | None = None
    maximum: int | None = None

    @staticmethod
    def of(f: dataclasses.Field[Any]) -> Caps:
        return DEFAULT_CAPS.merged(f.metadata)

    def merged(self, meta: Mapping[str, Any]) -> Caps:
        """These caps, with those that ``meta`` (from ``models.limits``) sets."""
        if not meta:
            return self
        return Caps(
            meta.get(MAX_LENGTH, self.max_length),
            meta.get(MAX_ITEMS_KEY, self.max_items),
            meta.get(MINIMUM, self.minimum),
            meta.get(MAXIMUM, self.maximum),
        )


DEFAULT_CAPS = Caps()


class _Invalid(Exception):
    """One value failed; the message is the problem, without the path."""


class _Problems:
    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, path: str, problem: str) -> None:
        # "" is the whole input (a lone dataclass argument, or the argument list).
        self.found.append((path, problem))


# A value that failed to convert; its problem is already recorded.
_BAD: Any = object()


@dataclass(frozen=True)
class _Param:
    name: str
    hint: Any
    required: bool
    # Where this argument's fields are named from: "" for the lone dataclass
    # argument (``items[0].quantity``), else the parameter name.
    root: str


class InputSpec:
    """The parameters of one workflow's run method, and how to decode them."""

    def __init__(self, workflow_name: str, fn: Callable[..., Any]) -> None:
        self.workflow_name = workflow_name
        # With extras: a parameter's bounds come as Annotated[int, limits(...)].
        hints = typing.get_type_hints(fn, include_extras=True)
        params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
        for p in params:
            if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                raise TypeError(f"{workflow_name}: parameter {p.name} must be positional")
            if p.name not in hints:
                raise TypeError(f"{workflow_name}: parameter {p.name} needs a type hint")
            _check_supported(hints[p.name], f"{workflow_name} parameter {p.name}")
        lone_dataclass = len(params) == 1 and dataclasses.is_dataclass(hints[params[0].name])
        self.params = [
            _Param(
                p.name,
                hints[p.name],
                p.default is inspect.Parameter.empty,
                "" if lone_dataclass else p.name,
            )
            for p in params
        ]
        self.return_hint = hints.get("return")

    @property
    def required(self) -> list[_Param]:
        return [p for p in self.params if p.required]

    def decode(self, args: Sequence[Any]) -> list[Any]:
        """Typed values for ``args``, or raise a non-retryable InvalidInput error.

        An argument is a ``RawValue`` when the client sent as many arguments as
        the run method requires. Otherwise the SDK has decoded the JSON itself
        (without type hints) and the plain value is checked the same way.
        """
        problems = _Problems()
        lo, hi = len(self.required), len(self.params)
        if not lo <= len(args) <= hi:
            wanted = str(lo) if lo == hi else f"{lo} to {hi}"
            problems.add(
                "",
                f"{self.workflow_name} takes {wanted} argument{'' if hi == 1 else 's'}, "
                f"got {len(args)}",
            )
            raise self._error(problems)
        values = []
        for param, arg in zip(self.params, args, strict=False):
            try:
                value = _json_value(arg) if isinstance(arg, RawValue) else arg
            except _Invalid as err:
                problems.add(param.root, str(err))
                continue
            values.append(_convert(param.hint, value, param.root, DEFAULT_CAPS, problems))
        if problems.found:
            raise self._error(problems)
        return values

    def _error(self, problems: _Problems) -> ApplicationError:
        return invalid_input(self.workflow_name, problems.found)


def invalid_input(name: str, problems: Sequence[tuple[str, str]]) -> ApplicationError:
    """The InvalidInput error of workflow, signal or update ``name``: (field, problem) pairs.

    Also for checks that need workflow state, such as an update's validator.
    """
    shown = problems[:MAX_PROBLEMS]
    text = "; ".join(f"{path}: {problem}" if path else problem for path, problem in shown)
    if len(problems) > MAX_PROBLEMS:
        text += f"; and {len(problems) - MAX_PROBLEMS} more problems"
    return ApplicationError(
        f"invalid {name} input: {text}",
        *({"field": path or "input", "problem": problem} for path, problem in shown),
        type=INVALID_INPUT,
        # The same input fails the same way on every attempt.
        non_retryable=True,
    )


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
    fn: Callable[..., Any], spec: InputSpec, params: Sequence[_Param], return_hint: Any
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


def _raw_presentation(params: Sequence[_Param]) -> tuple[inspect.Signature, dict[str, Any]]:
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


# --- decoding ------------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _json_value(raw: RawValue) -> Any:
    payload = raw.payload
    encoding = payload.metadata.get("encoding", b"")
    if encoding == b"binary/null":
        return None
    if encoding != b"json/plain":
        shown = encoding.decode("utf-8", "replace")[:QUOTE_CHARS] or "none"
        raise _Invalid(f"expected JSON (encoding json/plain), got encoding {shown}")
    try:
        return json.loads(
            payload.data,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
        )
    except _DuplicateKey as err:
        raise _Invalid(str(err)) from None
    except (ValueError, RecursionError) as err:
        # JSONDecodeError, bad UTF-8, an integer with thousands of digits.
        raise _Invalid(f"not valid JSON: {str(err)[:200]}") from None


def parse_json(data: bytes) -> Any:
    """``data`` parsed as strictly as a workflow's raw input; ValueError names the problem."""
    try:
        return _json_value(RawValue(Payload(metadata={"encoding": b"json/plain"}, data=data)))
    except _Invalid as err:
        raise ValueError(str(err)) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"duplicate key {_quote(key)} in a JSON object")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _convert(hint: Any, value: Any, path: str, caps: Caps, problems: _Problems) -> Any:
    try:
        return _convert_or_raise(hint, value, path, caps, problems)
    except _Invalid as err:
        problems.add(path, str(err))
        return _BAD


def _convert_or_raise(hint: Any, value: Any, path: str, caps: Caps, problems: _Problems) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        for extra in args[1:]:
            if isinstance(extra, Mapping):
                caps = caps.merged(extra)
        return _convert_or_raise(args[0], value, path, caps, problems)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(hint, value, path, caps, problems)
    if origin is typing.Literal:
        # `1 == True` in Python; JSON types must match too.
        if any(type(value) is type(a) and value == a for a in args):
            return value
        raise _Invalid(f"expected {_describe(hint)}, got {_show(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise _Invalid(f"expected a list, got {_show(value)}")
        _check_count(len(value), caps, "items")
        return [_convert(args[0], v, f"{path}[{i}]", caps, problems) for i, v in enumerate(value)]
    if origin is dict:
        return _convert_dict(args[1], value, path, caps, problems)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _convert_dataclass(hint, value, path, problems)
    return _convert_scalar(hint, value, caps)


def _convert_union(hint: Any, value: Any, path: str, caps: Caps, problems: _Problems) -> Any:
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    arms = [a for a in args if a is not type(None)]
    if len(arms) == 1:
        return _convert_or_raise(arms[0], value, path, caps, problems)
    for arm in arms:
        trial = _Problems()
        converted = _convert(arm, value, path, caps, trial)
        if not trial.found:
            return converted
    raise _Invalid(f"expected {_describe(hint)}, got {_show(value)}")


def _convert_dict(
    item_hint: Any, value: Any, path: str, caps: Caps, problems: _Problems
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"expected an object, got {_show(value)}")
    _check_count(len(value), caps, "entries")
    result = {}
    for key, item in value.items():
        where = f"{path}[{_quote(key)}]"
        if len(key) > MAX_ID_LENGTH:
            problems.add(where, f"keys are at most {MAX_ID_LENGTH} characters")
            continue
        result[key] = _convert(item_hint, item, where, caps, problems)
    return result


def _convert_dataclass(cls: Any, value: Any, path: str, problems: _Problems) -> Any:
    if not isinstance(value, dict):
        raise _Invalid(f"expected an object, got {_show(value)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = _hints(cls)
    unknown = [k for k in value if k not in fields]
    if len(unknown) > MAX_ITEMS:
        raise _Invalid(f"{len(unknown)} unknown fields (expected: {', '.join(fields)})")
    for key in unknown:
        problems.add(_join(path, key), f"unknown field (expected: {', '.join(fields)})")
    before = len(problems.found)
    kwargs = {}
    for name, f in fields.items():
        where = _join(path, name)
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], where, Caps.of(f), problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.add(where, "required field is missing")
    if unknown or len(problems.found) > before:
        return _BAD
    return cls(**kwargs)


def _convert_scalar(hint: Any, value: Any, caps: Caps) -> Any:
    if hint is str:
        if not isinstance(value, str):
            raise _Invalid(f"expected a string, got {_show(value)}")
        if caps.max_length is not None and len(value) > caps.max_length:
            raise _Invalid(f"at most {caps.max_length} characters, got {len(value)}")
        return value
    if hint is int or hint is float:
        return _convert_number(hint, value, caps)
    if hint is bool:
        if not isinstance(value, bool):
            raise _Invalid(f"expected true or false, got {_show(value)}")
        return value
    if hint is type(None):
        if value is not None:
            raise _Invalid(f"expected null, got {_show(value)}")
        return None
    raise _Invalid(f"cannot read input of type {hint!r}")  # ruled out by _check_supported


def _convert_number(hint: type[int] | type[float], value: Any, caps: Caps) -> int | float:
    # bool is an int in Python, but not in JSON; and "100" is not a number.
    accepted = (int,) if hint is int else (int, float)
    if not isinstance(value, accepted) or isinstance(value, bool):
        raise _Invalid(f"expected {_describe(hint)}, got {_show(value)}")
    if isinstance(value, int) and abs(value) > MAX_INT:
        # The store keeps amounts in 64-bit integer columns.
        raise _Invalid("out of range (at most 2^63 - 1 either way)")
    if not math.isfinite(value):
        raise _Invalid(f"expected a finite number, got {value}")
    if caps.minimum is not None and value < caps.minimum:
        raise _Invalid(f"must be at least {caps.minimum}, got {_show(value)}")
    if caps.maximum is not None and value > caps.maximum:
        raise _Invalid(f"must be at most {caps.maximum}, got {_show(value)}")
    return value if hint is int else float(value)


def _check_count(count: int, caps: Caps, what: str) -> None:
    if caps.max_items is not None and count > caps.max_items:
        raise _Invalid(f"at most {caps.max_items} {what}, got {count}")


def _check_supported(hint: Any, where: str, seen: frozenset[Any] = frozenset()) -> None:
    """Fail at import time, not at a client's first start, on a type not handled here."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        _check_supported(args[0], where, seen)
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            _check_supported(arg, where, seen)
    elif origin is typing.Literal:
        if not all(type(a) in (str, int, bool) for a in args):
            raise TypeError(f"{where}: Literal values must be str, int or bool")
    elif origin is list:
        _check_supported(args[0], where, seen)
    elif origin is dict:
        if args[0] is not str:
            raise TypeError(f"{where}: dict keys must be str (JSON object keys)")
        _check_supported(args[1], where, seen)
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if hint in seen:
            return
        for name, field_hint in _hints(hint).items():
            _check_supported(field_hint, f"{where}.{name}", seen | {hint})
    elif hint not in (str, int, float, bool, type(None)):
        raise TypeError(f"{where}: unsupported input type {hint!r}")


@functools.cache
def _hints(cls: Any) -> Mapping[str, Any]:
    # Pure, so sharing it between workflows (and with replay) is safe.
    return typing.get_type_hints(cls, include_extras=True)


# --- messages ------------------------------------------------------------------


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _quote(text: str) -> str:
    """A JSON-quoted prefix of ``text``: never echo a megabyte back."""
    if len(text) <= QUOTE_CHARS:
        return json.dumps(text)
    return json.dumps(text[:QUOTE_CHARS])[:-1] + '..."'


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, int):
        return str(value) if abs(value) <= MAX_INT else "a very large integer"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return _describe(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    names: dict[Any, str] = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        type(None): "null",
    }
    if hint in names:
        return names[hint]
    if origin is list:
        return "a list"
    return "an object"
