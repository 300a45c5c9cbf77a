"""What a bad input is told: the non-retryable InvalidInput error, naming each bad field."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Sequence
from typing import Any

from temporalio.exceptions import ApplicationError

INVALID_INPUT = "InvalidInput"
# Problems listed in one error; the rest are counted.
MAX_PROBLEMS = 10
# Integers must fit the store's 64-bit columns.
MAX_INT = 2**63 - 1
# How much of a bad value an error message quotes.
QUOTE_CHARS = 40


class Invalid(Exception):
    """One value failed; the message is the problem, without the path."""


class Problems:
    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, path: str, problem: str) -> None:
        # "" is the whole input (a lone dataclass argument, or the argument list).
        self.found.append((path, problem))


# A value that failed to convert; its problem is already recorded.
BAD: Any = object()


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


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def quote(text: str) -> str:
    """A JSON-quoted prefix of ``text``: never echo a megabyte back."""
    if len(text) <= QUOTE_CHARS:
        return json.dumps(text)
    return json.dumps(text[:QUOTE_CHARS])[:-1] + '..."'


def show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, int):
        return str(value) if abs(value) <= MAX_INT else "a very large integer"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return describe(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
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
