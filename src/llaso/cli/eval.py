"""`llaso eval`: score prediction files and write results.json, a Markdown table and an HTML report."""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from llaso.cli._shared import add_no_progress, add_workers
from llaso.evaluate.judge import JudgeConfig, LlmJudge
from llaso.evaluate.judging import LLM, PUBLISHED
from llaso.evaluate.report import damaged_files, markdown_report, records_read, write_reports
from llaso.evaluate.scoring import (
    ScoreOptions,
    SystemScore,
    display_names,
    finish_run,
    score_system,
)
from llaso.tasks.registry import Registry, load_registry
from llaso.utils.config import from_dict

DESCRIPTION = """\
Score LLaSO-format prediction files (the eval sample plus the prediction in `answer`, `result` or
`prediction`; JSON lists or JSONL). The task of a file comes from the records' `task` field, else from the
registry's file-name patterns. All inputs together are one system, unless --compare is given: then each
input (a folder) is one system and a leaderboard compares them.

Open-ended answers (AQA, and IP, EE, SCR, PSWL, PSSL as the original also judges them) get judge scores
from, in order: an LLM judge (--judge-url/--judge-model), the records given with --import-judge, the
folder's own published `gpt_result/` records; without any, a reference-based token F1 / ROUGE-L, labelled
as not comparable with judge scores.

Writes DIR/results.json (rates as fractions), DIR/results.md, DIR/report.html (radar chart embedded) and
DIR/radar.png. With --compare, systems whose folders share a name are told apart by their parent folders
(a/sys, b/sys), as files are.

Exit status 1 when a file could not be scored (unknown task, no readable record) or not read whole
(malformed JSON, a record that is not a JSON object, a list cut short), when judge records could not be
used (a gpt_result file not read whole, a bare file name that matches several files), or when a judge item
failed or the judge stage stopped (deadline, too many failures in a row; --allow-judge-failures accepts
these); the scores of what was read are still written, and such a file is marked in the tables. Exit
status 2 with --require-all-tasks when a system lacks a normalized score for a task of the registry (the
reports are written first)."""

EXAMPLES = """\
  llaso eval results/LLaSO-Base --out eval-out
  llaso eval --compare results/LLaSO-Base results/Qwen2-Audio --out leaderboard --require-all-tasks
  llaso eval --compare runs/a/sys runs/b/sys --out board      # shown as a/sys and b/sys
  llaso eval my_preds/*.jsonl --name my-model --out eval-out --numeric-policy exclude --bootstrap 0
  OPENAI_API_KEY=... llaso eval preds/ --out eval-out --judge-url http://127.0.0.1:8000/v1 \\
      --judge-model gpt-4o-mini --judge-cache ~/.cache/llaso-judge
  llaso eval preds/ --out eval-out --judge-url http://127.0.0.1:8000/v1 --judge-model qwen \\
      --judge-timeout 30 --judge-deadline 1800 --judge-max-consecutive-failures 10 --allow-judge-failures
  llaso eval preds/ --out eval-out --import-judge results/LLaSO-Base/gpt_result"""

NAME_HELP = (
    "system name (default: the folder or file name, with parent folders where two systems share one); "
    "with --compare, once per input"
)
NUMERIC_POLICY_HELP = (
    "unparsable numeric answers (PP, AC age): counted as the worst error in the label range, or excluded "
    "from the MAE (the original's rule, always reported as mae_compat) (default: %(default)s)"
)
BOOTSTRAP_HELP = "bootstrap resamples for the 95 %% intervals; 0: no intervals (default: %(default)s)"
SEED_HELP = "seed of the bootstrap resampling (default: %(default)s)"
NORMALIZATION_HELP = "which normalized score is the headline `normalized_score` (default: %(default)s)"
REQUIRE_ALL_HELP = "exit 2 when a system has no normalized score for some task of the registry"
IMPORT_JUDGE_HELP = (
    "original judge records (gpt_result/*.jsonl) to reuse; with --compare, DIR/<system>/"
    "gpt_result is used when it exists"
)
API_KEY_HELP = "environment variable holding the API key (default: %(default)s; never logged)"
URL_HELP = (
    "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1; user:password@ in it is sent as basic "
    "auth and a ?query with every request, neither ever logged"
)
TIMEOUT_HELP = (
    "bound on each judge call's total time (connect, send, every read), seconds (default: %(default)s)"
)
DEADLINE_HELP = (
    "bound on the whole judge stage of a system (each system of --compare gets its own), seconds; items "
    "not judged by then fail with 'judge deadline reached'"
)
MAX_FAILURES_HELP = (
    "stop the judge after N failed items in a row; the rest fail with the reason (default: %(default)s; "
    "0: never stop)"
)
ALLOW_FAILURES_HELP = (
    "exit 0 even when judge items failed or the judge stage stopped (they are still reported)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="PRED", help="prediction files or folders")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder for the reports")
    p.add_argument("--name", action="append", metavar="SYSTEM", help=NAME_HELP)
    p.add_argument("--compare", action="store_true", help="each input is one system; write a leaderboard")
    policies = ("exclude", "worst")
    defaults = ScoreOptions()
    p.add_argument(
        "--numeric-policy", choices=policies, default=defaults.numeric_policy, help=NUMERIC_POLICY_HELP
    )
    p.add_argument("--bootstrap", type=int, default=defaults.bootstrap, metavar="N", help=BOOTSTRAP_HELP)
    p.add_argument("--seed", type=int, default=defaults.seed, metavar="S", help=SEED_HELP)
    normalizations = ("absolute", "ratio_to_best")
    p.add_argument("--normalization", choices=normalizations, default="absolute", help=NORMALIZATION_HELP)
    p.add_argument("--require-all-tasks", action="store_true", help=REQUIRE_ALL_HELP)
    add_workers(p, "processes for the ASR text normalizer", metavar=None)
    add_no_progress(p, "no progress bars")
    _add_judge_arguments(p.add_argument_group("judge"))


def _add_judge_arguments(j: argparse._ArgumentGroup) -> None:
    j.add_argument("--judge-url", metavar="URL", help=URL_HELP)
    j.add_argument("--judge-model", metavar="MODEL", help="judge model name")
    j.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", metavar="VAR", help=API_KEY_HELP)
    temperature_help = "judge sampling temperature (default: %(default)s; replies are cached per temperature)"
    j.add_argument("--judge-temperature", type=float, default=0.0, metavar="T", help=temperature_help)
    j.add_argument("--judge-concurrency", type=int, default=4, metavar="N", help="requests in flight at once")
    retries_help = "retries of a failed call (timeouts, 408/409/429, 5xx) (default: %(default)s)"
    j.add_argument("--judge-retries", type=int, default=5, metavar="N", help=retries_help)
    j.add_argument("--judge-timeout", type=float, default=60.0, metavar="SECONDS", help=TIMEOUT_HELP)
    j.add_argument("--judge-deadline", type=float, metavar="SECONDS", help=DEADLINE_HELP)
    j.add_argument(
        "--judge-max-consecutive-failures", type=int, default=20, metavar="N", help=MAX_FAILURES_HELP
    )
    j.add_argument("--allow-judge-failures", action="store_true", help=ALLOW_FAILURES_HELP)
    j.add_argument("--judge-cache", type=Path, metavar="DIR", help="on-disk judge cache (survives restarts)")
    j.add_argument("--import-judge", type=Path, metavar="DIR", help=IMPORT_JUDGE_HELP)
    no_published_help = "ignore a system folder's own gpt_result/ records"
    j.add_argument("--no-published-judge", action="store_true", help=no_published_help)


def _judge_backend(args: argparse.Namespace) -> LlmJudge | None:
    if not args.judge_url and not args.judge_model:
        return None
    if not (args.judge_url and args.judge_model):
        raise ValueError("--judge-url and --judge-model go together")
    if args.judge_max_consecutive_failures < 0:
        raise ValueError("--judge-max-consecutive-failures must be >= 0")
    flags = {
        "base_url": args.judge_url,
        "model": args.judge_model,
        "api_key_env": args.judge_api_key_env,
        "temperature": args.judge_temperature,
        "max_concurrency": args.judge_concurrency,
        "max_retries": args.judge_retries,
        "timeout": args.judge_timeout,
        "deadline": args.judge_deadline,
        "max_consecutive_failures": args.judge_max_consecutive_failures,
        "cache_dir": args.judge_cache,
    }
    return LlmJudge(from_dict(JudgeConfig, flags, ""))


def _import_dir(base: Path | None, name: str, compare: bool) -> Path | None:
    if base is None:
        return None
    if compare:
        for cand in (base / name / "gpt_result", base / name):
            if cand.is_dir():
                return cand
    return base


def system_names(inputs: list[str], given: list[str] | None, compare: bool) -> list[str]:
    """The name of each system: as given, else the folder (or file stem) with as many parent folders as
    tell systems apart (`a/sys`, `b/sys`); two systems never share a name (results.json is keyed by it)."""
    count = len(inputs) if compare else 1
    if given:
        if len(given) != count:
            raise ValueError(f"{len(given)} --name value(s) for {count} system(s)")
        twice = [n for n, k in Counter(given).items() if k > 1]
        if twice:
            raise ValueError(f"--name {twice[0]!r} is given twice: each system needs its own name")
        return list(given)
    paths = [Path(x) for x in (inputs if compare else inputs[:1])]
    names = [
        n if p.is_dir() else re.sub(r"\.jsonl?$", "", n)
        for p, n in zip(paths, display_names(paths), strict=True)
    ]
    twice = [p for p, k in Counter(names).items() if k > 1]
    if twice:
        raise ValueError(f"the same system is given twice: {twice[0]}")
    return names


def _score_systems(args: argparse.Namespace, registry: Registry, options: ScoreOptions) -> list[SystemScore]:
    """One system per input with --compare, else one for all inputs; each announced on stderr."""
    groups = [[x] for x in args.inputs] if args.compare else [list(args.inputs)]
    names = system_names(list(args.inputs), args.name, args.compare)
    backend = _judge_backend(args)
    systems = []
    for name, inputs in zip(names, groups, strict=True):
        system = score_system(
            inputs,
            registry,
            name,
            judge_records=_import_dir(args.import_judge, name, args.compare),
            backend=backend,
            use_published=not args.no_published_judge,
            options=options,
        )
        scored = sum(1 for f in system.files if f.scored)
        msg = f"{name}: {scored} of {len(system.files)} file(s) scored; judge: {system.judge}"
        if system.judge == PUBLISHED:
            msg += f" from {system.judge_metadata.get('source')}"
        print(msg, file=sys.stderr)
        if system.judge == LLM:
            print(f"{name}: {_judge_summary(system.judge_metadata)}", file=sys.stderr)
        systems.append(system)
    return systems


def _judge_summary(meta: dict[str, Any]) -> str:
    """`judge: 118 of 120 item(s) judged (98.3 %), 2 failed, 40 from the cache`."""
    requested, judged = int(meta.get("requested") or 0), int(meta.get("judged") or 0)
    rate = f" ({judged / requested:.1%})" if requested else ""
    text = f"judge: {judged} of {requested} item(s) judged{rate}, {requested - judged} failed"
    return text + (f", {meta['cached']} from the cache" if meta.get("cached") else "")


def _judge_failures(system: SystemScore) -> list[str]:
    """What went wrong with a system's LLM judge items: counts, the commonest reasons, why it stopped."""
    meta = system.judge_metadata
    if system.judge != LLM or not (meta.get("failed") or meta.get("stopped")):
        return []
    out = [f"{system.name}: {meta.get('failed')} of {meta.get('requested')} judge item(s) failed"]
    out += [
        f"{system.name}:   {n} x {reason}" for reason, n in list(meta.get("failure_reasons", {}).items())[:5]
    ]
    if meta.get("stopped"):
        out.append(f"{system.name}: the judge stage stopped early: {meta['stopped']}")
    return out


def _file_errors(systems: list[SystemScore]) -> list[str]:
    """Files not scored or not read whole, and judge records that could not be used."""
    out = []
    for f in (f for s in systems for f in s.files if not f.scored):
        out.append(f"{f.file}: not scored: {'; '.join(f.problems) or 'no usable records'}")
    for f in (f for s in systems for f in damaged_files(s) if f.scored):
        out.append(f"{f.file}: not read whole ({records_read(f)}, scored): {f.details['read_error']}")
    out += [f"{s.name}: {p}" for s in systems for p in s.judge_metadata.get("problems", [])]
    return out


def _missing_tasks(systems: list[SystemScore], registry: Registry) -> dict[str, list[str]]:
    """Per system, the registry's tasks that have no normalized score."""
    abbrs = [t.abbr for t in registry]
    out = {}
    for s in systems:
        missing = [a for a in abbrs if s.tasks.get(a, {}).get("normalized") is None]
        if missing:
            out[s.name] = missing
    return out


def run(args: argparse.Namespace) -> int:
    registry = load_registry()
    if args.bootstrap < 0:
        raise ValueError("--bootstrap must be >= 0")
    flags = {
        "numeric_policy": args.numeric_policy,
        "progress": not args.no_progress,
        "workers": args.workers,
        "bootstrap": args.bootstrap,
        "seed": args.seed,
    }
    options = from_dict(ScoreOptions, flags, "")
    systems = _score_systems(args, registry, options)
    comparisons = finish_run(systems, registry, options)
    paths = write_reports(args.out, systems, registry, options, args.normalization, comparisons=comparisons)
    print(
        markdown_report(systems, registry, options, normalization=args.normalization, comparisons=comparisons)
    )
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    errors = _file_errors(systems)
    judge_failures = [line for s in systems for line in _judge_failures(s)]
    for line in errors + ([] if args.allow_judge_failures else judge_failures):
        print(f"error: {line}", file=sys.stderr)
    if args.allow_judge_failures:
        for line in judge_failures:
            print(f"warning: {line} (accepted: --allow-judge-failures)", file=sys.stderr)
    total = len(list(registry))
    missing = _missing_tasks(systems, registry)
    for name, tasks in missing.items():
        head = "error: " if args.require_all_tasks else ""
        covered = total - len(tasks)
        print(
            f"{head}{name}: normalized score over {covered} of {total} tasks (missing: {', '.join(tasks)})",
            file=sys.stderr,
        )
    if args.require_all_tasks and missing:
        return 2
    return 1 if errors or (judge_failures and not args.allow_judge_failures) else 0
