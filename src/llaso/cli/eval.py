"""`llaso eval`: score prediction files and write results.json, a Markdown table and an HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llaso.cli._shared import add_no_progress, add_workers
from llaso.evaluate.judge import JudgeConfig, LlmJudge
from llaso.evaluate.report import damaged_files, markdown_report, records_read, write_reports
from llaso.evaluate.scoring import ScoreOptions, SystemScore, apply_ratio_to_best, score_system
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
DIR/radar.png. Exit status 1 when a file could not be scored (unknown task, no readable record) or not
read whole (malformed JSON, a record that is not a JSON object, a list cut short); the scores of the records
read are still written, and such a file is marked in the tables."""

EXAMPLES = """\
  llaso eval results/LLaSO-Base --out eval-out
  llaso eval --compare results/LLaSO-Base results/Qwen2-Audio --out leaderboard
  llaso eval my_preds/*.jsonl --name my-model --out eval-out --numeric-policy worst
  OPENAI_API_KEY=... llaso eval preds/ --out eval-out --judge-url http://127.0.0.1:8000/v1 \\
      --judge-model gpt-4o-mini --judge-cache ~/.cache/llaso-judge
  llaso eval preds/ --out eval-out --import-judge results/LLaSO-Base/gpt_result"""

NAME_HELP = "system name (default: the folder or file name); with --compare, once per input"
NUMERIC_POLICY_HELP = (
    "unparsable numeric answers (PP, AC age): excluded from the MAE (the original) or "
    "counted as the worst error in the label range (default: %(default)s)"
)
NORMALIZATION_HELP = "which normalized score is the headline `normalized_score` (default: %(default)s)"
IMPORT_JUDGE_HELP = (
    "original judge records (gpt_result/*.jsonl) to reuse; with --compare, DIR/<system>/"
    "gpt_result is used when it exists"
)
API_KEY_HELP = "environment variable holding the API key (default: %(default)s; never logged)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="PRED", help="prediction files or folders")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder for the reports")
    p.add_argument("--name", action="append", metavar="SYSTEM", help=NAME_HELP)
    p.add_argument("--compare", action="store_true", help="each input is one system; write a leaderboard")
    policies = ("exclude", "worst")
    p.add_argument("--numeric-policy", choices=policies, default="exclude", help=NUMERIC_POLICY_HELP)
    normalizations = ("absolute", "ratio_to_best")
    p.add_argument("--normalization", choices=normalizations, default="absolute", help=NORMALIZATION_HELP)
    add_workers(p, "processes for the ASR text normalizer", metavar=None)
    add_no_progress(p, "no progress bars")
    _add_judge_arguments(p.add_argument_group("judge"))


def _add_judge_arguments(j: argparse._ArgumentGroup) -> None:
    url_help = "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
    j.add_argument("--judge-url", metavar="URL", help=url_help)
    j.add_argument("--judge-model", metavar="MODEL", help="judge model name")
    j.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", metavar="VAR", help=API_KEY_HELP)
    j.add_argument("--judge-temperature", type=float, default=0.0)
    j.add_argument("--judge-concurrency", type=int, default=4)
    j.add_argument("--judge-retries", type=int, default=5)
    j.add_argument("--judge-timeout", type=float, default=60.0)
    j.add_argument("--judge-cache", type=Path, metavar="DIR", help="on-disk judge cache (survives restarts)")
    j.add_argument("--import-judge", type=Path, metavar="DIR", help=IMPORT_JUDGE_HELP)
    no_published_help = "ignore a system folder's own gpt_result/ records"
    j.add_argument("--no-published-judge", action="store_true", help=no_published_help)


def _judge_backend(args: argparse.Namespace) -> LlmJudge | None:
    if not args.judge_url and not args.judge_model:
        return None
    if not (args.judge_url and args.judge_model):
        raise ValueError("--judge-url and --judge-model go together")
    flags = {
        "base_url": args.judge_url,
        "model": args.judge_model,
        "api_key_env": args.judge_api_key_env,
        "temperature": args.judge_temperature,
        "max_concurrency": args.judge_concurrency,
        "max_retries": args.judge_retries,
        "timeout": args.judge_timeout,
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


def _score_systems(args: argparse.Namespace, registry: Registry, options: ScoreOptions) -> list[SystemScore]:
    """One system per input with --compare, else one for all inputs; each announced on stderr."""
    groups = [[x] for x in args.inputs] if args.compare else [list(args.inputs)]
    names = args.name or []
    if names and len(names) != len(groups):
        raise ValueError(f"{len(names)} --name value(s) for {len(groups)} system(s)")
    backend = _judge_backend(args)
    systems = []
    for i, inputs in enumerate(groups):
        first = Path(inputs[0])
        name = names[i] if names else (first.name if first.is_dir() else first.stem)
        system = score_system(
            inputs,
            registry,
            name,
            judge_records=_import_dir(args.import_judge, name, args.compare),
            backend=backend,
            use_published=not args.no_published_judge,
            options=options,
        )
        msg = f"{name}: {len(system.files)} file(s) scored; judge: {system.judge}"
        if system.judge == "published records":
            msg += f" from {system.judge_metadata.get('source')}"
        print(msg, file=sys.stderr)
        systems.append(system)
    return systems


def run(args: argparse.Namespace) -> int:
    registry = load_registry()
    flags = {"numeric_policy": args.numeric_policy, "progress": not args.no_progress, "workers": args.workers}
    options = from_dict(ScoreOptions, flags, "")
    systems = _score_systems(args, registry, options)
    apply_ratio_to_best(systems, registry)
    paths = write_reports(args.out, systems, registry, options, args.normalization)
    print(markdown_report(systems, registry, options))
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    unscored = [f for s in systems for f in s.files if not f.scored]
    for f in unscored:
        print(f"error: {f.file}: not scored: {'; '.join(f.problems) or 'no usable records'}", file=sys.stderr)
    damaged = [f for s in systems for f in damaged_files(s) if f.scored]
    for f in damaged:
        read_error = f.details["read_error"]
        print(f"error: {f.file}: not read whole ({records_read(f)}, scored): {read_error}", file=sys.stderr)
    return 1 if unscored or damaged else 0
