"""Strict building of the config dataclasses from a raw tree (YAML, with env overrides).

An unknown key is an error, with the closest known key suggested; a value of
the wrong type, or one its field's check refuses, is an error naming the
dotted key (and the environment variable, when it came from one).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import yaml

from durable_temporal_workers.config.env import EnvValue, from_env_text, source
from durable_temporal_workers.config.schema import Check, ConfigError

T = TypeVar("T")


class Builder:
    """Builds a config dataclass from a raw tree; ``known_activities`` (when given) is what
    per-activity keys are checked against."""

    def __init__(self, known_activities: tuple[str, ...] | None) -> None:
        self._known_activities = known_activities

    def build(self, cls: type[T], raw: Any, path: str) -> T:
        if isinstance(raw, EnvValue):
            raw = self._yaml_from_env(raw, path)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path or 'config'}: must be a mapping, got {show(raw)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for key in raw:
            if key not in fields:
                hint = difflib.get_close_matches(str(key), fields, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise ConfigError(f"{join(path, str(key))}: unknown key{suggestion}")
        values: dict[str, Any] = {}
        for name, f in fields.items():
            if name in raw:
                check = f.metadata.get("check")
                # Mappings are keyed by activity name unless the field says otherwise.
                free_keys = f.metadata.get("free_keys", False)
                value = self._value(hints[name], raw[name], join(path, name), check, free_keys)
                if isinstance(value, dict) and f.default_factory is not dataclasses.MISSING:
                    # Per-activity tables add to the built-in entries, not replace them.
                    value = {**f.default_factory(), **value}
                values[name] = value
        return cls(**values)

    def _value(
        self, tp: Any, raw: Any, path: str, check: Check | None, free_keys: bool = False
    ) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType) and type(None) in args:
            inner = next(a for a in args if a is not type(None))
            if isinstance(raw, EnvValue) and raw.text.strip().lower() in ("", "null", "none"):
                return None
            if raw is None or raw == "":
                return None
            return self._value(inner, raw, path, check, free_keys)
        if dataclasses.is_dataclass(tp):
            return self.build(typing.cast(type[Any], tp), raw, path)
        if origin in (Mapping, dict):
            return self._mapping(args[1], raw, path, check, free_keys)
        if origin is tuple:
            return self._strings(raw, path)
        value = self._scalar(tp, raw, path)
        if check is not None:
            problem = check(value)
            if problem:
                raise ConfigError(f"{path}: {problem}, got {show(value)}{source(raw)}")
        return value

    def _mapping(
        self, value_type: Any, raw: Any, path: str, check: Check | None, free_keys: bool
    ) -> Any:
        if isinstance(raw, EnvValue):
            raw = self._yaml_from_env(raw, path)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: must be a mapping, got {show(raw)}")
        result: dict[str, Any] = {}
        for raw_key, item in raw.items():
            key = str(raw_key)
            known = None if free_keys else self._known_activities
            if known is not None and key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise ConfigError(f"{join(path, key)}: unknown activity{suggestion}")
            result[key] = self._value(value_type, item, join(path, key), check)
        return result

    def _strings(self, raw: Any, path: str) -> tuple[str, ...]:
        if isinstance(raw, EnvValue):
            return tuple(s.strip() for s in raw.text.split(",") if s.strip())
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            raise ConfigError(f"{path}: must be a list of strings, got {show(raw)}")
        return tuple(raw)

    def _scalar(self, tp: Any, raw: Any, path: str) -> Any:
        value = from_env_text(tp, raw.text) if isinstance(raw, EnvValue) else raw
        accepts, expected = _SCALARS[tp]
        if not accepts(value):
            raise ConfigError(f"{path}: {expected}, got {show(value)}{source(raw)}")
        return float(value) if tp is float else value

    def _yaml_from_env(self, raw: EnvValue, path: str) -> Any:
        try:
            return yaml.safe_load(raw.text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML (from ${raw.var}): {err}") from err


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_SCALARS: dict[type, tuple[Callable[[Any], bool], str]] = {
    bool: (lambda v: isinstance(v, bool), "must be true or false"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "must be an integer"),
    float: (_is_number, "must be a number"),
    str: (lambda v: isinstance(v, str) and bool(v), "must be a non-empty string"),
}


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
