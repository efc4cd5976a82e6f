from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from llaso.cli import main
from llaso.corpus.jsonio import CorpusFormatError, iter_records, write_records
from llaso.corpus.merge import MergeError, MergeOptions, merge

from conftest import make_record


def _corpus(root: Path) -> dict[str, list[dict[str, object]]]:
    """A miniature release: modality folders with task files named as in LLaSO."""
    files = {
        "text_audio/vctk_gender_classification_train.json": [
            make_record(answer=g, id=f"g{i}", voice=[f"v/{i}.wav"])
            for i, g in enumerate(["Male."] * 30 + ["Female."] * 30)
        ],
        "text_audio/ASR_train.jsonl": [
            make_record(prompt="Transcribe.<audio>", answer=f"words {i}", index=i, voice=[f"asr/{i}.wav"])
            for i in range(100)
        ],
        "audio_text/dolly_instruction_0_train.json": [
            make_record(prompt="<audio>Some passage", answer=f"a{i}", id=str(i), voice=[f"d/{i}.wav"])
            for i in range(20)
        ],
        "pure_audio/alpaca_gpt4_end_train.json": [
            make_record(prompt="Listen and respond.<audio>", answer=f"b{i}", id=str(i), voice=[f"p/{i}.wav"])
            for i in range(10)
        ],
    }
    for name, recs in files.items():
        write_records(root / name, recs)
    return files


def _ids(records: list[dict[str, object]]) -> list[str]:
    return [json.dumps(r["conversations"]) + str(r["voice"]) for r in records]


def test_plain_merge_annotates_task_and_modality(tmp_path: Path) -> None:
    files = _corpus(tmp_path / "rel")
    rep = merge([tmp_path / "rel"], tmp_path / "out.json", MergeOptions(progress=False))
    out = list(iter_records(tmp_path / "out.json"))
    assert rep.n_written == len(out) == 190
    kinds = Counter((r["task"], r["modality"]) for r in out)
    assert kinds == {
        ("SGC", "text_audio"): 60,
        ("ASR", "text_audio"): 100,
        ("AQA", "audio_text"): 20,
        ("AQA", "pure_audio"): 10,
    }
    # every original field survives, in order, before the two added ones
    first = next(r for r in out if r.get("index") == 0)
    assert list(first) == ["voice", "conversations", "index", "task", "modality"]
    assert sorted(_ids(out)) == sorted(_ids([r for rs in files.values() for r in rs]))


def test_no_annotate_keeps_records_byte_identical(tmp_path: Path) -> None:
    files = _corpus(tmp_path / "rel")
    merge(
        [tmp_path / "rel" / "text_audio"], tmp_path / "o.jsonl", MergeOptions(progress=False, annotate=False)
    )
    out = list(iter_records(tmp_path / "o.jsonl"))
    assert (
        out == files["text_audio/ASR_train.jsonl"] + files["text_audio/vctk_gender_classification_train.json"]
    )


@pytest.mark.parametrize("buffer_mb", [64.0, 0.001])  # 0.001 MB forces dozens of on-disk buckets
def test_shuffle_is_a_seeded_permutation(tmp_path: Path, buffer_mb: float) -> None:
    _corpus(tmp_path / "rel")

    def run(seed: int, name: str) -> list[dict[str, object]]:
        merge(
            [tmp_path / "rel"],
            tmp_path / name,
            MergeOptions(shuffle=True, seed=seed, shuffle_buffer_mb=buffer_mb, progress=False),
        )
        return list(iter_records(tmp_path / name))

    plain = merge([tmp_path / "rel"], tmp_path / "p.json", MergeOptions(progress=False))
    a, b, c = run(1, "a.json"), run(1, "b.json"), run(2, "c.json")
    ordered = list(iter_records(tmp_path / "p.json"))
    assert a == b and a != c and a != ordered
    assert sorted(_ids(a)) == sorted(_ids(ordered)) and plain.n_written == len(a)
    # no temporary bucket files are left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json", "c.json", "p.json", "rel"]


def test_ratios_caps_and_repeats(tmp_path: Path) -> None:
    _corpus(tmp_path / "rel")
    opts = MergeOptions(ratios={"ASR": 0.25, "SGC": 2.0}, caps={"*_end_*": 3}, seed=3, progress=False)
    rep = merge([tmp_path / "rel"], tmp_path / "o.json", opts)
    out = list(iter_records(tmp_path / "o.json"))
    tasks = Counter(r["task"] for r in out)
    assert tasks["ASR"] == 25 and tasks["SGC"] == 120 and tasks["AQA"] == 20 + 3
    assert Counter(_ids([r for r in out if r["task"] == "SGC"])).most_common(1)[0][1] == 2
    assert rep.tasks == tasks
    again = merge([tmp_path / "rel"], tmp_path / "o2.json", opts)
    assert list(iter_records(tmp_path / "o2.json")) == out and again.n_written == rep.n_written


def test_dedup_by_id_and_content(tmp_path: Path) -> None:
    recs = [
        make_record(id="1"),
        make_record(id="1", answer="other"),
        make_record(id="2"),
        make_record(id="3", voice=["a\\b.wav"]),
    ]  # same content as id 1 once slashes are normalized
    write_records(tmp_path / "in.json", recs)
    by_id = merge([tmp_path / "in.json"], tmp_path / "i.json", MergeOptions(dedup="id", progress=False))
    assert [r["id"] for r in iter_records(tmp_path / "i.json")] == ["1", "2", "3"] and by_id.n_duplicates == 1
    by_content = merge(
        [tmp_path / "in.json"], tmp_path / "c.json", MergeOptions(dedup="content", progress=False)
    )
    assert [r["id"] for r in iter_records(tmp_path / "c.json")] == ["1", "1"] and by_content.n_duplicates == 2


def test_invalid_record_stops_unless_skipped(tmp_path: Path) -> None:
    recs = [make_record(), make_record(prompt="no placeholder"), {"voice": []}, make_record()]
    write_records(tmp_path / "in.json", recs)
    with pytest.raises(MergeError, match=r"in\.json, record 1: 0 <audio> placeholder\(s\) but 1 voice"):
        merge([tmp_path / "in.json"], tmp_path / "o.json", MergeOptions(progress=False))
    assert not (tmp_path / "o.json").exists()
    rep = merge([tmp_path / "in.json"], tmp_path / "o.json", MergeOptions(skip_invalid=True, progress=False))
    assert rep.n_written == 2 and rep.n_invalid == 2
    assert "record 2: missing 'conversations'" in rep.invalid[1]


def test_skip_invalid_skips_bad_jsonl_lines(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(
        json.dumps(make_record()) + "\n{torn\n" + json.dumps(make_record()) + "\n"
    )
    rep = merge(
        [tmp_path / "in.jsonl"], tmp_path / "o.jsonl", MergeOptions(skip_invalid=True, progress=False)
    )
    assert rep.n_written == 2 and rep.n_invalid == 1 and "line 2" in rep.invalid[0]


def test_unknown_explicit_task_is_invalid(tmp_path: Path) -> None:
    write_records(tmp_path / "in.json", [make_record(task="XYZ")])
    with pytest.raises(MergeError, match="unknown task 'XYZ'"):
        merge([tmp_path / "in.json"], tmp_path / "o.json", MergeOptions(progress=False))


def test_crash_midway_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _corpus(tmp_path / "rel")
    (tmp_path / "out.json").write_text("[]\n")  # an older complete file is kept, not half-overwritten
    import llaso.corpus.merge as m

    real = m.AtomicWriter.write_line
    calls = {"n": 0}

    def flaky(self: m.AtomicWriter, line: str) -> None:
        calls["n"] += 1
        if calls["n"] == 50:
            raise OSError("disk full")
        real(self, line)

    monkeypatch.setattr(m.AtomicWriter, "write_line", flaky)
    for shuffle in (False, True):
        calls["n"] = 0
        with pytest.raises(OSError, match="disk full"):
            merge([tmp_path / "rel"], tmp_path / "out.json", MergeOptions(shuffle=shuffle, progress=False))
        assert (tmp_path / "out.json").read_text() == "[]\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "rel"]


def test_killed_process_leaves_no_complete_looking_output(tmp_path: Path) -> None:
    big = [make_record(answer="x" * 200, id=str(i)) for i in range(300_000)]
    write_records(tmp_path / "big.json", big)
    out = tmp_path / "out.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llaso.cli",
            "data",
            "merge",
            str(tmp_path / "big.json"),
            "-o",
            str(out),
            "-q",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.endswith(".partial") for p in tmp_path.iterdir()):
        time.sleep(0.01)
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    partial = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert partial and all(p.name.startswith(".") for p in partial)  # hidden and named as unfinished
    # the next write of the same output removes what the killed one left (it stayed for ever)
    write_records(tmp_path / "small.json", big[:3])
    merge([tmp_path / "small.json"], out, MergeOptions(progress=False))
    assert [r["id"] for r in iter_records(out)] == ["0", "1", "2"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("NaN", "NaN is not valid JSON"),
        ("-Infinity", "-Infinity is not valid JSON"),
        ("1e999", "1e999 is too large for a JSON number"),
        ('"\\udc80"', "unpaired surrogate"),
        ("[" * 1000 + "]" * 1000, "nested deeper than 64 levels"),
    ],
)
@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_values_that_are_not_json_never_reach_the_output(
    tmp_path: Path, value: str, message: str, suffix: str
) -> None:
    """merge wrote NaN back as a bare token and 1e999 as Infinity: output no JSON parser reads."""
    lines = [json.dumps(make_record(id=str(i))) for i in range(3)]
    lines[1] = lines[1].replace('"id"', f'"score": {value}, "id"')
    src = tmp_path / f"vctk_gender_classification_train{suffix}"
    src.write_text("[" + ",\n".join(lines) + "]" if suffix == ".json" else "\n".join(lines) + "\n")
    if suffix == ".json" and value.startswith("[" * 1000):  # its end cannot be found: the list stops
        with pytest.raises(CorpusFormatError, match=rf"line 2, column \d+, record 1: {message}"):
            merge([src], tmp_path / "o.json", MergeOptions(skip_invalid=True, progress=False))
        return
    with pytest.raises(MergeError, match=rf"line 2.*record 1: .*{re.escape(message)}.*--skip-invalid"):
        merge([src], tmp_path / "o.json", MergeOptions(progress=False))
    rep = merge([src], tmp_path / "o.json", MergeOptions(skip_invalid=True, progress=False))
    assert (rep.n_written, rep.n_invalid) == (2, 1) and message in rep.invalid[0]

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in the output")

    text = (tmp_path / "o.json").read_text()
    assert [r["id"] for r in json.loads(text, parse_constant=refuse)] == ["0", "2"]
    assert "Infinity" not in text and "NaN" not in text


def test_record_numbers_stay_right_after_a_skipped_line(tmp_path: Path) -> None:
    """A bad JSONL line takes a record index; merge numbered the records after it one too low."""
    src = tmp_path / "vctk_gender_classification_train.jsonl"
    src.write_text(
        "\n".join([json.dumps(make_record()), "{torn", json.dumps(make_record(prompt="no placeholder"))])
        + "\n"
    )
    rep = merge([src], tmp_path / "o.jsonl", MergeOptions(skip_invalid=True, progress=False))
    assert "line 2, column 2, record 1: malformed JSON" in rep.invalid[0]
    assert "record 2: 0 <audio> placeholder(s)" in rep.invalid[1]
    assert rep.files[str(src)] == {"read": 3, "invalid": 2, "written": 1}


def test_a_build_folder_merges_its_corpora_and_leaves_its_reports_out(tmp_path: Path) -> None:
    """Merging a build folder stopped at build_report.json, read as JSONL."""
    write_records(tmp_path / "b" / "vctk_gender_classification_train.json", [make_record(id="1")])
    (tmp_path / "b" / "build_report.json").write_text(json.dumps({"records": 1, "tasks": ["SGC"]}, indent=2))
    rep = merge([tmp_path / "b"], tmp_path / "o.json", MergeOptions(progress=False))
    assert rep.n_written == 1 and [Path(f).name for f, _ in rep.skipped_files] == ["build_report.json"]
    assert "left out" in rep.summary() and "build_report.json" in rep.summary()


def test_cli_merge_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _corpus(tmp_path / "rel")
    rc = main(
        [
            "data",
            "merge",
            str(tmp_path / "rel"),
            "-o",
            str(tmp_path / "o.jsonl"),
            "--shuffle",
            "--seed",
            "5",
            "--ratio",
            "ASR=0.5",
            "--cap",
            "SGC=10",
            "--report",
            str(tmp_path / "r.json"),
            "-q",
        ]
    )
    assert rc == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["written"] == 50 + 10 + 30 and report["tasks"]["ASR"] == 50
    assert "wrote 90 records" in capsys.readouterr().out
    assert main(["data", "merge", str(tmp_path / "o.jsonl"), "-o", str(tmp_path / "o.jsonl"), "-q"]) == 2
    assert "also an input" in capsys.readouterr().err
    assert (
        main(
            [
                "data",
                "merge",
                str(tmp_path / "empty_dir_that_is_missing"),
                "-o",
                str(tmp_path / "x.json"),
                "-q",
            ]
        )
        == 2
    )
