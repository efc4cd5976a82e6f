"""The result store: keyed by content, refusing stores made with other settings, resumable at any crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llaso.infer.store import ItemKey, ResultStore, StoreMismatch, item_fingerprint, item_keys

SETTINGS = {
    "backend": "llaso",
    "model_config": "c" * 32,
    "model_files": "f" * 32,
    "dtype": "float32",
    "limit": None,
}
EVAL = "evals/vctk_gender_classification_test.json"


def _rec(i: int) -> dict[str, Any]:
    return {"id": str(i), "conversations": [{"from": "human", "value": "q<audio>"}], "answer": f"a{i}"}


def _keys(n: int) -> list[ItemKey]:
    return item_keys(item_fingerprint(_rec(i)) for i in range(n))


def _store(out: Path, settings: dict[str, Any] | None = None, **kw: Any) -> ResultStore:
    return ResultStore(out, EVAL, settings or SETTINGS, **kw)


def _complete(out: Path, n: int = 3) -> ResultStore:
    store = _store(out)
    keys = _keys(n)
    store.add((keys[i], 5, _rec(i)) for i in range(n))
    assert store.finalize(keys)
    return store


def test_fingerprints_ignore_predictions_and_key_order_and_count_duplicates() -> None:
    a = {"id": "1", "conversations": [{"from": "human", "value": "q"}]}
    b = {"conversations": [{"value": "q", "from": "human"}], "id": "1", "answer": "x", "result": "y"}
    assert item_fingerprint(a) == item_fingerprint(b)
    assert item_fingerprint(a) != item_fingerprint({**a, "id": "2"})
    fa, fb = item_fingerprint(a), item_fingerprint({**a, "id": "2"})
    assert item_keys([fa, fb, fa, fa]) == [(fa, 0), (fb, 0), (fa, 1), (fa, 2)]


def test_resume_after_a_torn_line_gives_every_item_once(tmp_path: Path) -> None:
    keys = _keys(4)
    store = _store(tmp_path / "out")
    store.add([(keys[3], 5, _rec(3)), (keys[0], 5, _rec(0))])
    store.close()
    with open(store.log_path, "a", encoding="utf-8") as f:
        f.write('{"item": {"fp": "1", "answ')  # the process died mid-line
    again = _store(tmp_path / "out")
    assert sorted(again.load()) == sorted([keys[0], keys[3]])
    assert not again.finalize(keys) and not again.final_path.exists()
    again.add([(keys[1], 5, _rec(1)), (keys[2], 5, _rec(2))])
    assert again.finalize(keys)
    out = again.final_records()
    assert out == [_rec(i) for i in range(4)]
    assert again.final_path.name == "vctk_gender_classification_test.jsonl"
    assert not again.log_path.exists() and again.sidecar_path.exists()
    third = _store(tmp_path / "out")
    assert len(third.load()) == 4 and third.is_current(keys) and not third.is_current(keys[::-1])


def test_log_lines_are_valid_json_after_repair(tmp_path: Path) -> None:
    keys = _keys(2)
    store = _store(tmp_path)
    store.add([(keys[0], 5, _rec(0))])
    store.close()
    store.log_path.write_bytes(store.log_path.read_bytes() + b'{"broken": ')
    s2 = _store(tmp_path)
    assert list(s2.load()) == [keys[0]]
    s2.add([(keys[1], 5, _rec(1))])
    s2.close()
    lines = [json.loads(x) for x in store.log_path.read_text().splitlines()]
    assert lines[0]["settings"] == SETTINGS and [x["record"]["id"] for x in lines[1:]] == ["0", "1"]


@pytest.mark.parametrize("where", ["log", "final"])
def test_a_store_made_with_other_settings_is_refused_naming_the_file_and_the_setting(
    tmp_path: Path, where: str
) -> None:
    if where == "final":
        _complete(tmp_path)
    else:
        _store(tmp_path).add([(_keys(1)[0], 5, _rec(0))])
    other = _store(tmp_path, {**SETTINGS, "limit": 8})
    for call in (other.check, other.load):
        with pytest.raises(StoreMismatch) as e:
            call()
        msg = str(e.value)
        assert str(other.final_path) in msg and "--limit was none, now 8" in msg
        assert "another --out" in msg and "delete" in msg


def test_stores_written_before_settings_were_recorded_are_refused(tmp_path: Path) -> None:
    old_log = tmp_path / "log" / ".vctk_gender_classification_test.inprogress.jsonl"
    old_log.parent.mkdir()
    old_log.write_text(json.dumps({**_rec(0), "_llaso_index": 0}) + "\n")
    old_final = tmp_path / "final" / "vctk_gender_classification_test.jsonl"
    old_final.parent.mkdir()
    old_final.write_text(json.dumps(_rec(0)) + "\n")  # no sidecar
    for folder in ("log", "final"):
        with pytest.raises(StoreMismatch, match="records no settings") as e:
            _store(tmp_path / folder).load()
        assert "vctk_gender_classification_test.jsonl" in str(e.value)


def test_reused_results_follow_the_content_not_the_position(tmp_path: Path) -> None:
    _complete(tmp_path, 3)
    keys = _keys(3)
    store = _store(tmp_path)
    done = store.load()
    assert all(done[k].record["id"] == str(i) for i, k in enumerate(keys))
    new_order = [keys[2], keys[0]]  # one item dropped, the others swapped: nothing to decode
    assert not store.is_current(new_order) and store.finalize(new_order)
    assert [r["id"] for r in store.final_records()] == ["2", "0"]
    assert _store(tmp_path).load().keys() == set(new_order)


def test_a_crash_between_the_sidecar_and_the_final_file_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _complete(tmp_path, 3)
    keys = _keys(3)
    store = _store(tmp_path)
    store.load()
    store.add([(_keys(4)[3], 5, _rec(3))])

    class Killed(Exception):
        pass

    def die(*a: Any, **k: Any) -> Any:
        raise Killed  # the new sidecar is in place, the old final file still is too

    with monkeypatch.context() as m, pytest.raises(Killed):
        m.setattr("llaso.infer.store.AtomicWriter", die)
        store.finalize([*keys[::-1], _keys(4)[3]])
    assert store.sidecar_path.exists() and len(store.final_records()) == 3
    again = _store(tmp_path)
    done = again.load()  # the sidecar does not match the final file: the log holds every result
    assert {done[k].record["id"] for k in _keys(4)} == {"0", "1", "2", "3"}
    assert again.finalize([*keys[::-1], _keys(4)[3]])
    assert [r["id"] for r in again.final_records()] == ["2", "1", "0", "3"]


def test_a_final_file_changed_by_hand_is_refused_and_partials_are_cleaned(tmp_path: Path) -> None:
    store = _complete(tmp_path, 2)
    stale = tmp_path / f".{store.final_path.name}.abc12345.partial"  # named as mkstemp names them
    stale.write_text("half a file")
    store.final_path.write_text(store.final_path.read_text().replace('"a0"', '"edited"'))
    with pytest.raises(StoreMismatch, match="changed after llaso infer wrote it"):
        _store(tmp_path).load()
    store.final_path.unlink()
    store.sidecar_path.unlink()
    _complete(tmp_path, 2)
    assert not stale.exists()


def test_a_lone_surrogate_is_written_as_valid_utf8(tmp_path: Path) -> None:
    store = _store(tmp_path)
    key = _keys(1)[0]
    store.add([(key, 5, {**_rec(0), "answer": "x\udc80y"})])
    assert store.finalize([key])
    assert store.final_path.read_bytes().decode("utf-8").count("x\ufffdy") == 1
