"""The ``temporal-workers`` command: run workers, and drive workflows from scripts.

Client subcommands print JSON on stdout. Exit codes: 0 success, 1 a workflow
failed or Temporal could not be reached (message on stderr), 2 bad usage,
bad config or inconsistent registry.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

from durable_temporal_workers import __version__
from durable_temporal_workers.cli import actors, generic, operate, sagas
from durable_temporal_workers.cli.common import EXIT_FAILED, EXIT_USAGE, Parsers, UsageError
from durable_temporal_workers.client import InputError
from durable_temporal_workers.config import ConfigError
from durable_temporal_workers.registry import RegistryError

__all__ = ["build_parser", "main", "run"]


def run() -> NoReturn:
    """Console-script entry point: ``main()``, then exit without interpreter teardown.

    The SDK's Rust threads can crash CPython's finalization ("PyGILState_Release
    ... must be current", temporalio/sdk-python#300), turning exit code 0 into
    134. Everything is flushed first, so skipping teardown loses nothing.
    """
    try:
        code = main()
    except Exception:
        traceback.print_exc()
        code = EXIT_FAILED
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (ConfigError, RegistryError, InputError, UsageError) as err:
        print(f"temporal-workers: error: {err}", file=sys.stderr)
        return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="temporal-workers",
        description="Temporal workers of durable.temporal, and a client to drive them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parsers = Parsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    operate.add_commands(parsers)
    sagas.add_commands(parsers)
    actors.add_commands(parsers)
    generic.add_commands(parsers)
    return parser
