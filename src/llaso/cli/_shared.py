"""What several commands share: the help layout and the flags that mean the same in each of them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

INPUTS_HELP = "JSON/JSONL files, or folders to search for them"
AUDIO_ROOT_HELP = "folder the voice paths are relative to"
AUDIO_WORKERS_HELP = "parallel audio probes (default: the number of CPUs)"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples keep their line breaks (they are written as laid out)."""


def add_inputs(p: argparse.ArgumentParser, help: str = INPUTS_HELP) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=help)


def add_audio_root(p: argparse.ArgumentParser, help: str = AUDIO_ROOT_HELP) -> None:
    p.add_argument("--audio-root", metavar="DIR", help=help)


def add_workers(
    p: argparse.ArgumentParser,
    help: str = AUDIO_WORKERS_HELP,
    *,
    metavar: str | None = "N",
    default: Any = None,
) -> None:
    p.add_argument("--workers", type=int, default=default, metavar=metavar, help=help)


def add_seed(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--seed", type=int, default=0, help=help)


def add_no_progress(p: argparse.ArgumentParser, help: str = "no progress bar") -> None:
    p.add_argument("--no-progress", action="store_true", help=help)


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_json(p: argparse.ArgumentParser, help: str = "machine-readable output") -> None:
    p.add_argument("--json", action="store_true", help=help)


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal, and not with --no-progress."""
    return not args.no_progress and sys.stderr.isatty()


def usage_error(message: str) -> int:
    """A bad combination of flags: the message on stderr, exit status 2 (as argparse's own errors)."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def check_workers(args: argparse.Namespace) -> int | None:
    """Exit status 2 for --workers below 1, else None."""
    if args.workers is not None and args.workers < 1:
        return usage_error("--workers must be at least 1")
    return None


def key_value(kind: type) -> Callable[[str], tuple[str, Any]]:
    """An argparse `type` for KEY=VALUE flags (repeatable ones collect a list of pairs)."""

    def parse(text: str) -> tuple[str, Any]:
        key, sep, value = text.rpartition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
        try:
            return key, kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a valid {kind.__name__}") from None

    return parse
