from __future__ import annotations

import json
from pathlib import Path

from llaso.infer.store import INDEX_KEY, ResultStore


def _rec(i: int) -> dict[str, object]:
    return {"id": str(i), "conversations": [{"from": "human", "value": "q<audio>"}], "answer": f"a{i}"}


def test_resume_after_a_torn_line_gives_every_item_once(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "out", "evals/vctk_gender_classification_test.json")
    store.add([(3, _rec(3)), (0, _rec(0))])
    store.close()
    with open(store.log_path, "a", encoding="utf-8") as f:
        f.write('{"id": "1", "answ')  # the process died mid-line
    again = ResultStore(tmp_path / "out", "evals/vctk_gender_classification_test.json")
    assert sorted(again.done()) == [0, 3]
    assert not again.finalize(4) and not again.final_path.exists()
    again.add([(1, _rec(1)), (2, _rec(2))])
    assert again.finalize(4)
    out = again.final_records()
    assert [r["id"] for r in out] == ["0", "1", "2", "3"] and all(INDEX_KEY not in r for r in out)
    assert again.final_path.name == "vctk_gender_classification_test.jsonl"
    assert (
        not again.log_path.exists()
        and ResultStore(tmp_path / "out", "x/vctk_gender_classification_test.json").complete
    )


def test_log_lines_are_valid_json_after_repair(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, "a.jsonl")
    store.add([(0, _rec(0))])
    store.close()
    store.log_path.write_bytes(store.log_path.read_bytes() + b'{"broken": ')
    s2 = ResultStore(tmp_path, "a.jsonl")
    assert list(s2.done()) == [0]
    s2.add([(1, _rec(1))])
    s2.close()
    lines = store.log_path.read_text().splitlines()
    assert [json.loads(x)[INDEX_KEY] for x in lines] == [0, 1]
