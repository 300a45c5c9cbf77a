"""Decoding: a raw payload to JSON, then JSON to the type hints, within the caps.

Pure (no I/O, no clock), so a replay decodes the same history the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue

from durable_temporal_workers.models import (
    MAX_ID_LENGTH,
    MAX_ITEMS,
    MAX_ITEMS_KEY,
    MAX_LENGTH,
    MAXIMUM,
    MINIMUM,
)
from durable_temporal_workers.workflows.inputs.problems import (
    BAD,
    MAX_INT,
    QUOTE_CHARS,
    Invalid,
    Problems,
    describe,
    join,
    quote,
    show,
)


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


class _DuplicateKey(ValueError):
    pass


def json_value(raw: RawValue) -> Any:
    payload = raw.payload
    encoding = payload.metadata.get("encoding", b"")
    if encoding == b"binary/null":
        return None
    if encoding != b"json/plain":
        shown = encoding.decode("utf-8", "replace")[:QUOTE_CHARS] or "none"
        raise Invalid(f"expected JSON (encoding json/plain), got encoding {shown}")
    try:
        return json.loads(
            payload.data,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
        )
    except _DuplicateKey as err:
        raise Invalid(str(err)) from None
    except (ValueError, RecursionError) as err:
        # JSONDecodeError, bad UTF-8, an integer with thousands of digits.
        raise Invalid(f"not valid JSON: {str(err)[:200]}") from None


def parse_json(data: bytes) -> Any:
    """``data`` parsed as strictly as a workflow's raw input; ValueError names the problem."""
    try:
        return json_value(RawValue(Payload(metadata={"encoding": b"json/plain"}, data=data)))
    except Invalid as err:
        raise ValueError(str(err)) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"duplicate key {quote(key)} in a JSON object")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def convert(hint: Any, value: Any, path: str, caps: Caps, problems: Problems) -> Any:
    try:
        return _convert_or_raise(hint, value, path, caps, problems)
    except Invalid as err:
        problems.add(path, str(err))
        return BAD


def _convert_or_raise(hint: Any, value: Any, path: str, caps: Caps, problems: Problems) -> Any:
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
        raise Invalid(f"expected {describe(hint)}, got {show(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise Invalid(f"expected a list, got {show(value)}")
        _check_count(len(value), caps, "items")
        return [convert(args[0], v, f"{path}[{i}]", caps, problems) for i, v in enumerate(value)]
    if origin is dict:
        return _convert_dict(args[1], value, path, caps, problems)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _convert_dataclass(hint, value, path, problems)
    return _convert_scalar(hint, value, caps)


def _convert_union(hint: Any, value: Any, path: str, caps: Caps, problems: Problems) -> Any:
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    arms = [a for a in args if a is not type(None)]
    if len(arms) == 1:
        return _convert_or_raise(arms[0], value, path, caps, problems)
    for arm in arms:
        trial = Problems()
        converted = convert(arm, value, path, caps, trial)
        if not trial.found:
            return converted
    raise Invalid(f"expected {describe(hint)}, got {show(value)}")


def _convert_dict(
    item_hint: Any, value: Any, path: str, caps: Caps, problems: Problems
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"expected an object, got {show(value)}")
    _check_count(len(value), caps, "entries")
    result = {}
    for key, item in value.items():
        where = f"{path}[{quote(key)}]"
        if len(key) > MAX_ID_LENGTH:
            problems.add(where, f"keys are at most {MAX_ID_LENGTH} characters")
            continue
        result[key] = convert(item_hint, item, where, caps, problems)
    return result


def _convert_dataclass(cls: Any, value: Any, path: str, problems: Problems) -> Any:
    if not isinstance(value, dict):
        raise Invalid(f"expected an object, got {show(value)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = _hints(cls)
    unknown = [k for k in value if k not in fields]
    if len(unknown) > MAX_ITEMS:
        raise Invalid(f"{len(unknown)} unknown fields (expected: {', '.join(fields)})")
    for key in unknown:
        problems.add(join(path, key), f"unknown field (expected: {', '.join(fields)})")
    before = len(problems.found)
    kwargs = {}
    for name, f in fields.items():
        where = join(path, name)
        if name in value:
            kwargs[name] = convert(hints[name], value[name], where, Caps.of(f), problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.add(where, "required field is missing")
    if unknown or len(problems.found) > before:
        return BAD
    return cls(**kwargs)


def _convert_scalar(hint: Any, value: Any, caps: Caps) -> Any:
    if hint is str:
        if not isinstance(value, str):
            raise Invalid(f"expected a string, got {show(value)}")
        if caps.max_length is not None and len(value) > caps.max_length:
            raise Invalid(f"at most {caps.max_length} characters, got {len(value)}")
        return value
    if hint is int or hint is float:
        return _convert_number(hint, value, caps)
    if hint is bool:
        if not isinstance(value, bool):
            raise Invalid(f"expected true or false, got {show(value)}")
        return value
    if hint is type(None):
        if value is not None:
            raise Invalid(f"expected null, got {show(value)}")
        return None
    raise Invalid(f"cannot read input of type {hint!r}")  # ruled out by _check_supported


def _convert_number(hint: type[int] | type[float], value: Any, caps: Caps) -> int | float:
    # bool is an int in Python, but not in JSON; and "100" is not a number.
    accepted = (int,) if hint is int else (int, float)
    if not isinstance(value, accepted) or isinstance(value, bool):
        raise Invalid(f"expected {describe(hint)}, got {show(value)}")
    if isinstance(value, int) and abs(value) > MAX_INT:
        # The store keeps amounts in 64-bit integer columns.
        raise Invalid("out of range (at most 2^63 - 1 either way)")
    if not math.isfinite(value):
        raise Invalid(f"expected a finite number, got {value}")
    if caps.minimum is not None and value < caps.minimum:
        raise Invalid(f"must be at least {caps.minimum}, got {show(value)}")
    if caps.maximum is not None and value > caps.maximum:
        raise Invalid(f"must be at most {caps.maximum}, got {show(value)}")
    return value if hint is int else float(value)


def _check_count(count: int, caps: Caps, what: str) -> None:
    if caps.max_items is not None and count > caps.max_items:
        raise Invalid(f"at most {caps.max_items} {what}, got {count}")


def check_supported(hint: Any, where: str, seen: frozenset[Any] = frozenset()) -> None:
    """Fail at import time, not at a client's first start, on a type not handled here."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        check_supported(args[0], where, seen)
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            check_supported(arg, where, seen)
    elif origin is typing.Literal:
        if not all(type(a) in (str, int, bool) for a in args):
            raise TypeError(f"{where}: Literal values must be str, int or bool")
    elif origin is list:
        check_supported(args[0], where, seen)
    elif origin is dict:
        if args[0] is not str:
            raise TypeError(f"{where}: dict keys must be str (JSON object keys)")
        check_supported(args[1], where, seen)
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if hint in seen:
            return
        for name, field_hint in _hints(hint).items():
            check_supported(field_hint, f"{where}.{name}", seen | {hint})
    elif hint not in (str, int, float, bool, type(None)):
        raise TypeError(f"{where}: unsupported input type {hint!r}")


@functools.cache
def _hints(cls: Any) -> Mapping[str, Any]:
    # Pure, so sharing it between workflows (and with replay) is safe.
    return typing.get_type_hints(cls, include_extras=True)
