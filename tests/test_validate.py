from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from llaso.cli import main
from llaso.corpus.validate import SEVERITY, Code, Severity, ValidationReport, validate_paths

from conftest import make_record


def write_json(path: Path, records: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def where(report: ValidationReport, code: Code) -> list[tuple[str, int | None]]:
    return [(Path(p.file).name, p.record) for p in report.problems if p.code == code]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    d = tmp_path / "corpus"
    write_json(
        d / "vctk_gender_classification_test.json",
        [
            make_record(id="a"),  # 0 fine
            {"id": "b", "voice": ["x.wav"]},  # 1 no conversations
            make_record(prompt="<audio> and <audio>?", voice=["x.wav"], id="c"),  # 2 2 placeholders, 1 path
            {
                "id": "d",
                "voice": ["x.wav"],
                "conversations": [{"from": "human", "value": "Say?<audio>"}],
            },  # 3
            make_record(voice=[""], id="e"),  # 4 empty voice path
            make_record(task="XYZ", id="f"),  # 5 unknown task
            make_record(id="a"),  # 6 duplicate id
            make_record(prompt="What is the capital of France?", voice=[], id="g"),  # 7 no <audio>
            make_record(task="sgc", id=7),  # 8 fine (case-insensitive)
        ],
    )
    return d


def test_each_problem_kind_with_file_and_record(corpus: Path) -> None:
    r = validate_paths([corpus], progress=False)
    f = "vctk_gender_classification_test.json"
    assert r.records == 9 and len(r.files) == 1 and r.files[0].task == "SGC"
    assert where(r, Code.SCHEMA) == [(f, 1)]
    assert "conversations" in r.by_code(Code.SCHEMA)[0].message
    assert where(r, Code.PLACEHOLDER_MISMATCH) == [(f, 2)]
    assert where(r, Code.NO_GPT_TURN) == [(f, 3)]
    assert where(r, Code.EMPTY_VOICE_PATH) == [(f, 4)]
    assert where(r, Code.UNKNOWN_TASK) == [(f, 5)]
    assert "XYZ" in r.by_code(Code.UNKNOWN_TASK)[0].message
    assert where(r, Code.DUPLICATE_ID) == [(f, 6)]
    assert (
        "'a'" in r.by_code(Code.DUPLICATE_ID)[0].message
        and "record 0" in r.by_code(Code.DUPLICATE_ID)[0].message
    )
    assert where(r, Code.UNDETERMINED_MODALITY) == [(f, 7)]
    assert not r.by_code(Code.UNDETERMINED_TASK)  # the file name gives the task
    assert r.errors == 6 and r.warnings == 1 and not r.ok
    assert r.files[0].errors == 6 and r.files[0].warnings == 1
    assert all(p.severity == SEVERITY[p.code] for p in r.problems)


def test_malformed_json_names_the_line_and_validation_continues(tmp_path: Path) -> None:
    good = json.dumps(make_record(id="1"))
    text = "[\n" + good + ",\n" + good.replace('"1"', '"2"') + ',\n{"id": "3", oops}\n]\n'
    (tmp_path / "a_broken.json").write_text(text, encoding="utf-8")
    write_json(tmp_path / "b_next.json", [{"voice": []}])
    r = validate_paths([tmp_path], progress=False)
    (bad,) = r.by_code(Code.MALFORMED_JSON)
    assert Path(bad.file).name == "a_broken.json" and bad.line == 4 and bad.record == 2
    assert "column" in bad.message
    assert r.files[0].readable is False and r.files[0].records == 2
    assert where(r, Code.SCHEMA) == [("b_next.json", 0)]  # the next file was still read


def test_jsonl_bad_lines_are_each_reported_and_indices_stay_aligned(tmp_path: Path) -> None:
    rec = json.dumps(make_record(task="SGC"))
    dup = json.dumps(make_record(task="SGC", id="same"))
    p = write_jsonl(
        tmp_path / "x.jsonl", [rec, "{not json", dup, "[1, 2]", json.dumps({"voice": []}), "", dup]
    )
    r = validate_paths([p], progress=False)
    assert [(b.line, b.record) for b in r.by_code(Code.MALFORMED_JSON)] == [(2, 1), (4, 3)]
    assert where(r, Code.SCHEMA) == [("x.jsonl", 4)]
    assert where(r, Code.DUPLICATE_ID) == [("x.jsonl", 5)]  # blank lines take no index, bad lines do
    assert "first at record 2" in r.by_code(Code.DUPLICATE_ID)[0].message
    assert r.records == 6


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_text("[]\n")
    r = validate_paths([tmp_path / "empty.json", tmp_path / "nope.json"], progress=False)
    assert where(r, Code.UNREADABLE_FILE) == [("nope.json", None)]
    assert r.files[0].records == 0 and r.files[0].readable


def test_undetermined_task_is_one_warning_per_file(tmp_path: Path) -> None:
    p = write_json(
        tmp_path / "my_mixture.json",
        [make_record(task="ER"), make_record(), make_record(), make_record(task="ASR")],
    )
    r = validate_paths([p], progress=False)
    (w,) = r.by_code(Code.UNDETERMINED_TASK)
    assert w.severity == Severity.WARNING and w.record == 1 and "2 record(s)" in w.message
    assert r.ok and not r.passed(strict=True)


def test_duplicate_ids_across_files_warn_within_file_error(tmp_path: Path) -> None:
    a = write_json(tmp_path / "dolly_input_1_test.json", [make_record(id="42"), make_record(id="1")])
    b = write_json(
        tmp_path / "dolly_instruction_0_test.json",
        [make_record(prompt="<audio>Some input.", id="42"), make_record(prompt="<audio>x", id=1)],
    )
    r = validate_paths([a, b], progress=False)
    assert where(r, Code.DUPLICATE_ID_ACROSS_FILES) == [("dolly_instruction_0_test.json", 0)]  # 1 != "1"
    assert "dolly_input_1_test.json" in r.by_code(Code.DUPLICATE_ID_ACROSS_FILES)[0].message
    assert r.errors == 0


def test_duplicates_in_a_larger_file(tmp_path: Path) -> None:
    n = 20_000
    recs = [make_record(id=f"s{i}", task="SGC") for i in range(n)]
    recs.append(make_record(id="s123", task="SGC"))
    recs.append(make_record(id="s19999", task="SGC"))
    r = validate_paths([write_json(tmp_path / "big.json", recs)], progress=False)
    assert where(r, Code.DUPLICATE_ID) == [("big.json", n), ("big.json", n + 1)]
    assert r.records == n + 2


# ---- audio ------------------------------------------------------------------------------------------------------


@pytest.fixture
def audio_corpus(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "audio"
    (root / "sub").mkdir(parents=True)
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    sf.write(root / "sub" / "good.wav", x, 16000)
    sf.write(root / "long.wav", np.tile(x, 3), 16000)
    sf.write(root / "silent.wav", np.zeros(8000, np.float32), 16000)
    sf.write(root / "empty.wav", np.zeros(0, np.float32), 16000)
    sf.write(root / "low.wav", x[::2], 8000)
    (root / "corrupt.wav").write_bytes(b"RIFF....WAVEjunk" * 8)
    (tmp_path / "outside.wav").write_bytes((root / "sub" / "good.wav").read_bytes())
    voices = [
        "sub\\good.wav",
        "missing.wav",
        "corrupt.wav",
        "empty.wav",
        "silent.wav",
        "long.wav",
        "low.wav",
        "../outside.wav",
        "sub/good.wav",
    ]
    corpus = write_json(
        tmp_path / "data" / "vctk_gender_classification_test.json",
        [make_record(voice=[v], id=str(i)) for i, v in enumerate(voices)],
    )
    return corpus, root


def test_audio_checks(audio_corpus: tuple[Path, Path]) -> None:
    corpus, root = audio_corpus
    r = validate_paths(
        [corpus], check_audio=True, audio_root=root, workers=2, max_duration=2.0, progress=False
    )
    f = corpus.name
    assert where(r, Code.AUDIO_MISSING) == [(f, 1)]
    assert where(r, Code.AUDIO_UNDECODABLE) == [(f, 2)]
    assert where(r, Code.AUDIO_EMPTY) == [(f, 3)]
    assert where(r, Code.AUDIO_SILENT) == [(f, 4)]
    assert where(r, Code.AUDIO_TOO_LONG) == [(f, 5)]
    assert where(r, Code.AUDIO_SAMPLE_RATE) == [(f, 6)]
    assert where(r, Code.AUDIO_PATH_ESCAPES) == [(f, 7)]
    assert "missing.wav" in r.by_code(Code.AUDIO_MISSING)[0].message
    a = r.audio
    assert a is not None
    # records 0 and 8 share sub/good.wav (backslash normalized): probed once
    assert a.references == 8 and a.files == 7 and a.ok == 5
    assert a.sample_rates == {16000: 3, 8000: 1}
    assert a.total_seconds == pytest.approx(1 + 3 + 0.5 + 1)
    assert a.max_seconds == pytest.approx(3.0) and a.min_seconds == pytest.approx(0.5)
    assert sum(a.duration_histogram.values()) == 4
    assert r.errors == 5 and r.warnings == 1 and r.count(Severity.INFO) == 1


def test_values_no_reader_accepts_are_errors_of_their_record_and_the_file_reads_on(tmp_path: Path) -> None:
    """NaN and infinities passed (merge then wrote them as bare tokens), depth 1,000 raised RecursionError,
    and a lone surrogate in a prompt passed validate and broke the tokenizer later."""
    good, last = json.dumps(make_record(id="g0")), json.dumps(make_record(id="g1"))
    bad = [
        json.dumps(make_record(id="nan")).replace('"id"', '"score": NaN, "id"'),
        json.dumps(make_record(id="big")).replace('"id"', '"score": 1e999, "id"'),
        json.dumps(make_record(prompt="Is it \udc80?<audio>", id="sur")),  # escaped: the file is ASCII
        json.dumps(make_record(id="meta", metadata={"note": "x\ud800"})),
        '{"id": "deep", "metadata": ' + "[" * 1000 + "]" * 1000 + "}",
        '{"id": "deep100", "metadata": ' + "[" * 100 + "]" * 100 + "}",
    ]
    name = "vctk_gender_classification_test"
    (tmp_path / f"{name}.json").write_text("[" + ",\n".join([good, *bad[:4], bad[5], last]) + "]")
    (tmp_path / f"{name}.jsonl").write_text("\n".join([good, *bad, last]) + "\n")
    r = validate_paths([tmp_path], progress=False, max_problems=None)
    by_file = {
        f: [(p.line, p.record) for p in r.by_code(Code.INVALID_VALUE) if p.file.endswith(f)]
        for f in ("json", "jsonl")
    }
    assert by_file == {"json": [(i, i - 1) for i in range(2, 7)], "jsonl": [(i, i - 1) for i in range(2, 8)]}
    msgs = " | ".join(p.message for p in r.by_code(Code.INVALID_VALUE))
    for text in (
        "NaN is not valid JSON",
        "1e999 is too large",
        "unpaired surrogate \\udc80",
        "nested deeper than 64",
    ):
        assert text in msgs
    assert [f.records for f in r.files] == [7, 8] and all(f.readable for f in r.files)
    assert r.errors == 11 and not r.by_code(Code.MALFORMED_JSON)


def test_bytes_that_are_not_utf8_are_named_by_line(tmp_path: Path) -> None:
    """validate named a byte position ("in position 63"); merge, eval and infer named no file at all."""
    good = json.dumps(make_record(task="SGC"))
    lines = [good, good.replace("Male.", "Mâle."), good]
    (tmp_path / "latin1.jsonl").write_bytes("\n".join(lines).encode("latin-1"))
    (tmp_path / "latin1.json").write_bytes(("[" + ",\n".join(lines) + "]").encode("latin-1"))
    (tmp_path / "wide.json").write_bytes(("[" + good + "]").encode("utf-16"))
    r = validate_paths([tmp_path], progress=False)
    got = {(Path(p.file).name, p.line, p.record) for p in r.by_code(Code.NOT_UTF8)}
    assert got == {("latin1.json", 2, 1), ("latin1.jsonl", 2, 1), ("wide.json", 1, None)}
    assert all("position" not in p.message for p in r.problems)
    assert [f.records for f in r.files] == [1, 3, 0]  # JSONL reads on past the bad line; the list stops


def test_a_build_folder_validates_its_corpora_and_notes_its_reports(tmp_path: Path) -> None:
    """`validate DIR` on a build folder reported build_report.json and stats.json as 240 malformed lines."""
    write_json(tmp_path / "b" / "vctk_gender_classification_test.json", [make_record(id="1")])
    (tmp_path / "b" / "build_report.json").write_text(json.dumps({"tasks": list(range(100))}, indent=2))
    (tmp_path / "b" / "stats").mkdir()
    (tmp_path / "b" / "stats" / "stats.json").write_text(json.dumps({"n": [{"a": 1}] * 60}, indent=2))
    r = validate_paths([tmp_path / "b"], progress=False)
    assert (
        r.ok
        and r.records == 1
        and [Path(f.path).name for f in r.files] == ["vctk_gender_classification_test.json"]
    )
    assert sorted(Path(f).name for f, _ in r.skipped) == ["build_report.json", "stats.json"]
    assert "skipped 2 file(s) that are JSON documents, not corpora" in r.summary()
    assert len(r.to_dict()["skipped_files"]) == 2
    named = validate_paths([tmp_path / "b" / "stats" / "stats.json"], progress=False)  # named on its own
    assert [(p.code, p.record) for p in named.problems] == [(Code.UNREADABLE_FILE, None)]
    assert "one JSON object" in named.problems[0].message


# ---- command line -----------------------------------------------------------------------------------------------


def test_cli_exit_codes_and_report(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = write_json(tmp_path / "ok" / "vctk_gender_classification_test.json", [make_record(id="x")])
    assert main(["data", "validate", str(clean)]) == 0
    assert "result: OK" in capsys.readouterr().out

    warn_only = write_json(tmp_path / "w" / "whatever.json", [make_record()])
    assert main(["data", "validate", str(warn_only)]) == 0
    assert main(["data", "validate", str(warn_only), "--strict"]) == 1
    capsys.readouterr()

    report = tmp_path / "out" / "report.json"
    assert main(["data", "validate", str(corpus), "--report", str(report), "--show", "3"]) == 1
    out = capsys.readouterr().out
    assert "placeholder-mismatch" in out and "first 3 of 7 problem(s)" in out and "FAILED" in out
    data = json.loads(report.read_text())
    assert data["ok"] is False and data["passed"] is False
    assert data["counts"] == {"error": 6, "warning": 1, "info": 0}
    assert data["by_code"]["duplicate-id"] == 1
    assert len(data["problems"]) == 7
    p = next(p for p in data["problems"] if p["code"] == "schema")
    assert set(p) == {"file", "record", "line", "severity", "code", "message"}
    assert (
        p["record"] == 1
        and p["severity"] == "error"
        and p["file"].endswith("vctk_gender_classification_test.json")
    )
    assert data["files"][0]["records"] == 9


def test_cli_audio_and_usage_errors(
    audio_corpus: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, root = audio_corpus
    assert main(["data", "validate", str(corpus), "--audio-root", str(root), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "audio-missing" in out and "sample rates" in out
    assert main(["data", "validate", str(corpus), "--audio-root", str(root / "nope")]) == 2
    assert main(["data", "validate", str(corpus.parent / "empty-folder-that-is-missing")]) == 1


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data", "validate", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--check-audio" in out and "--strict" in out


# ---- the published LLaSO-Eval outputs ---------------------------------------------------------------------------


def test_published_llaso_base_validates_without_errors(results_dir: Path) -> None:
    files = sorted((results_dir / "LLaSO-Base").glob("*.json"))
    r = validate_paths(files, progress=False)
    assert len(r.files) == 44 and r.records == 10_605
    assert r.errors == 0, r.summary()
    # ids are per source: the only warnings are ids shared across files, e.g. dolly (t,a) vs (a,t)
    assert set(r.counts) == {Code.DUPLICATE_ID_ACROSS_FILES}
    pairs = {
        (Path(p.file).name, p.message.split(" also appears in ")[1].split(" ")[0].rsplit("/", 1)[-1])
        for p in r.problems
    }
    assert ("dolly_instruction_0_test.json", "dolly_input_1_test.json") in pairs
    assert all(f.task is not None for f in r.files)


@pytest.mark.parametrize("system", ["Kimi-Audio", "Qwen2-Audio"])
def test_other_published_systems_validate(results_dir: Path, system: str) -> None:
    files = sorted(p for p in (results_dir / system).iterdir() if p.suffix in (".json", ".jsonl"))
    r = validate_paths(files, progress=False)
    assert r.records == 10_605 and r.errors == 0, r.summary()
