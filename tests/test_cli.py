"""The command layer: one static table, modules loaded only when their command runs, argparse only in cli/."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from llaso.cli import COMMANDS, command, main
from llaso.infer.chat import ChatRequest, chat_sample
from llaso.utils.config import ConfigError, from_dict

SRC = Path(__file__).resolve().parents[1] / "src" / "llaso"
HEAVY = ("torch", "transformers")


def _modules_after(argv: list[str]) -> set[str]:
    """The heavy modules loaded by `llaso ARGV` (in a fresh interpreter; --help exits 0)."""
    code = (
        "import contextlib, io, sys\n"
        "from llaso.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(proc.stdout.split())


@pytest.mark.parametrize("argv", [["--help"], ["data", "--help"]])
def test_top_level_help_loads_no_torch(argv: list[str]) -> None:
    # what keeps `llaso --help` under half a second (benchmarks/bench_cli_startup.py times it)
    assert _modules_after(argv) == set()


def test_no_library_module_imports_argparse() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.split(".")[0] == "argparse" for n in names):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize(("group", "name", "module"), [(g, n, m) for g, n, m, _ in COMMANDS])
def test_every_command_has_its_parts_and_examples(
    group: str | None, name: str, module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cmd = command(importlib.import_module(module), name)
    assert cmd.description and cmd.examples
    assert callable(cmd.add_arguments) and callable(cmd.run)
    with pytest.raises(SystemExit) as exit_info:
        main([*([group] if group else []), name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and cmd.examples.splitlines()[0].strip() in out


def test_single_command_modules_use_the_plain_names() -> None:
    counts: dict[str, int] = {}
    for _, _, module, _ in COMMANDS:
        counts[module] = counts.get(module, 0) + 1
    for module, n in counts.items():
        if n == 1:
            mod = importlib.import_module(module)
            assert all(hasattr(mod, a) for a in ("DESCRIPTION", "EXAMPLES", "add_arguments", "run")), module


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "llaso.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert proc.stdout.startswith("llaso ")


def test_errors_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "show", "nope"]) == 2  # a ValueError from the library: "error: ..." and 2
    assert capsys.readouterr().err.startswith("error: unknown task")
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "merge", "x", "-o", "y", "--ratio", "bad"])
    assert exit_info.value.code == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


@dataclass
class _WithPath:
    cache: Path | None = None


def test_options_take_paths() -> None:
    # JudgeConfig.cache_dir is a Path: `llaso eval --judge-cache DIR` builds it through from_dict
    assert from_dict(_WithPath, {"cache": "a/b"}, "").cache == Path("a/b")
    assert from_dict(_WithPath, {"cache": Path("c")}, "").cache == Path("c")
    assert from_dict(_WithPath, {"cache": None}, "").cache is None
    with pytest.raises(ConfigError, match="cache"):
        from_dict(_WithPath, {"cache": 3.5}, "")


def test_chat_sample_in_each_configuration() -> None:
    generic = ("Listen and answer.",)
    ta = chat_sample(ChatRequest(audio="clip.wav", text=" Gender? "), generic)
    assert ta.voice == ["clip.wav"] and ta.conversations[0].value == "Gender?<audio>"
    at = chat_sample(ChatRequest(audio="ask.wav", text="some text", spoken_instruction=True), generic)
    assert at.conversations[0].value == "<audio>some text"
    pure = chat_sample(ChatRequest(audio="q.wav"), generic)
    assert pure.conversations[0].value == "Listen and answer.<audio>"
