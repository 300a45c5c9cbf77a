"""The parameters of a run method or handler, and how to decode the arguments sent to it."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from durable_temporal_workers.workflows.inputs.convert import (
    DEFAULT_CAPS,
    check_supported,
    convert,
    json_value,
)
from durable_temporal_workers.workflows.inputs.problems import Invalid, Problems, invalid_input


@dataclass(frozen=True)
class Param:
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
            check_supported(hints[p.name], f"{workflow_name} parameter {p.name}")
        lone_dataclass = len(params) == 1 and dataclasses.is_dataclass(hints[params[0].name])
        self.params = [
            Param(
                p.name,
                hints[p.name],
                p.default is inspect.Parameter.empty,
                "" if lone_dataclass else p.name,
            )
            for p in params
        ]
        self.return_hint = hints.get("return")

    @property
    def required(self) -> list[Param]:
        return [p for p in self.params if p.required]

    def decode(self, args: Sequence[Any]) -> list[Any]:
        """Typed values for ``args``, or raise a non-retryable InvalidInput error.

        An argument is a ``RawValue`` when the client sent as many arguments as
        the run method requires. Otherwise the SDK has decoded the JSON itself
        (without type hints) and the plain value is checked the same way.
        """
        problems = Problems()
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
                value = json_value(arg) if isinstance(arg, RawValue) else arg
            except Invalid as err:
                problems.add(param.root, str(err))
                continue
            values.append(convert(param.hint, value, param.root, DEFAULT_CAPS, problems))
        if problems.found:
            raise self._error(problems)
        return values

    def _error(self, problems: Problems) -> ApplicationError:
        return invalid_input(self.workflow_name, problems.found)
