"""`llaso tasks list` and `llaso tasks show ABBR`: the task registry, as a table or as JSON."""

from __future__ import annotations

import argparse
import json

from llaso.cli._shared import add_json
from llaso.tasks.registry import Task, join_labels, load_registry

LIST_DESCRIPTION = "List the 20 LLaSO tasks with their category, answer type, primary metric and sources."
LIST_EXAMPLES = "  llaso tasks list\n  llaso tasks list --category paralinguistic\n  llaso tasks list --json"
SHOW_DESCRIPTION = "Show one task: its sources and eval files, label sets, metrics and instruction templates."
SHOW_EXAMPLES = "  llaso tasks show SGC\n  llaso tasks show asr --json"


def add_list_arguments(p: argparse.ArgumentParser) -> None:
    categories = ["linguistic", "semantic", "paralinguistic"]
    p.add_argument("--category", choices=categories, help="only this category")
    add_json(p)


def add_show_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("abbr", metavar="ABBR", help="task abbreviation, e.g. SGC (case-insensitive)")
    add_json(p)


def task_to_dict(t: Task) -> dict[str, object]:
    """A task as `--json` prints it."""
    return {
        "abbr": t.abbr,
        "name": t.name,
        "category": t.category,
        "answer_type": t.answer_type,
        "metrics": list(t.metrics),
        "max_new_tokens": t.max_new_tokens,
        "sources": [
            {
                "name": s.name,
                "files": list(s.files),
                "answer_type": s.answer_type,
                "metrics": list(s.metrics),
                "labels": list(s.labels),
                "aliases": {k: list(v) for k, v in s.aliases.items()},
                "range": list(s.range) if s.range else None,
            }
            for s in t.sources
        ],
        "templates": list(t.templates),
        "number_templates": list(t.number_templates),
    }


def run_list(args: argparse.Namespace) -> int:
    reg = load_registry()
    tasks = [t for t in reg if args.category in (None, t.category)]
    if args.json:
        print(json.dumps([task_to_dict(t) for t in tasks], indent=2, ensure_ascii=False))
        return 0
    print(f"{'task':6} {'category':15} {'answer':11} {'metric':12} {'tmpl':>4}  name (sources)")
    for t in tasks:
        srcs = ", ".join(s.name for s in t.sources)
        print(
            f"{t.abbr:6} {t.category:15} {t.answer_type:11} {t.primary_metric:12} {len(t.templates):>4}  "
            f"{t.name} ({srcs})"
        )
    print(f"\n{len(tasks)} tasks; {len(reg.generic_prompts)} generic pure-audio prompts")
    return 0


def run_show(args: argparse.Namespace) -> int:
    t = load_registry().get(args.abbr)
    if args.json:
        print(json.dumps(task_to_dict(t), indent=2, ensure_ascii=False))
        return 0
    print(
        f"{t.abbr}: {t.name}\n  category: {t.category}\n  answer type: {t.answer_type}\n"
        f"  metrics: {', '.join(t.metrics)} (primary: {t.primary_metric})\n"
        f"  max new tokens: {t.max_new_tokens} (the default budget of `llaso infer`)"
    )
    for s in t.sources:
        print(f"  source {s.name}: files {', '.join(s.files)}")
        if s.answer_type != t.answer_type:
            print(f"    answer type: {s.answer_type}, metrics: {', '.join(s.metrics)}")
        if s.labels:
            print(f"    labels ({len(s.labels)}): {join_labels(s.labels)}")
        for label, al in s.aliases.items():
            print(f"    alias: {label} = {', '.join(al)}")
        if s.range:
            print(f"    range: {s.range[0]:g}..{s.range[1]:g}")
    _print_templates("templates", t.templates)
    if t.number_templates:
        _print_templates("number templates", t.number_templates)
    return 0


def _print_templates(title: str, templates: tuple[str, ...]) -> None:
    print(f"  {title} ({len(templates)}):")
    for i, tpl in enumerate(templates, 1):
        print(f"    {i:2}. {tpl}")
