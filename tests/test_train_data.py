"""Training data: length-grouped order, per-process batches, collator, bad samples, the feature cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from llaso.model.modeling import build_tiny_llaso
from llaso.schema import Sample
from llaso.train.cache import FeatureCache, encode_windows, encoder_fingerprint
from llaso.train.data import (
    Collator,
    Item,
    Skipped,
    TrainDataset,
    epoch_order,
    padding_fraction,
    rank_batches,
)

from helpers.train import TINY, TINY_CONFIG, make_corpus


# ---- batch order -----------------------------------------------------------------------------------
def test_length_grouped_order_is_a_seeded_permutation_of_similar_length_megabatches() -> None:
    rng = np.random.default_rng(1)
    lengths = [int(x) for x in rng.integers(10, 2000, size=203)]
    types = [1] * 190 + [0] * 13
    mega = 16
    a = epoch_order(lengths, seed=3, epoch=0, group_by_length=True, megabatch=mega, types=types)
    assert a == epoch_order(lengths, seed=3, epoch=0, group_by_length=True, megabatch=mega, types=types)
    assert a != epoch_order(lengths, seed=3, epoch=1, group_by_length=True, megabatch=mega, types=types)
    assert a != epoch_order(lengths, seed=4, epoch=0, group_by_length=True, megabatch=mega, types=types)
    assert sorted(a) == list(range(len(lengths)))  # every index exactly once
    n_full = (190 // mega) + (13 // mega)
    spans = []
    for k in range(n_full):  # each full mega-batch: one type, sorted by length
        m = a[k * mega : (k + 1) * mega]
        assert len({types[i] for i in m}) == 1
        ls = [lengths[i] for i in m]
        assert ls == sorted(ls, reverse=True)
        spans.append((types[m[0]], ls[-1], ls[0]))
    for t1, lo1, hi1 in spans:  # ... and a contiguous slice of the type's sorted lengths (no overlaps)
        for t2, lo2, hi2 in spans:
            if t1 == t2 and (lo1, hi1) != (lo2, hi2):
                assert lo1 >= hi2 or lo2 >= hi1
    assert [s[2] for s in spans] != sorted((s[2] for s in spans), reverse=True)  # step order is shuffled
    rest = [lengths[i] for i in a[n_full * mega :]]
    assert rest == sorted(rest, reverse=True)  # the leftovers come last, sorted

    rand = epoch_order(lengths, seed=3, epoch=0)
    assert sorted(rand) == list(range(len(lengths))) and rand != a
    grouped = padding_fraction(rank_batches(a, batch_size=4, world_size=2, grad_accum=2), lengths)
    random_ = padding_fraction(rank_batches(rand, batch_size=4, world_size=2, grad_accum=2), lengths)
    assert grouped < random_ / 3


def test_rank_batches_split_the_order_between_processes() -> None:
    order = list(range(50))
    r0 = rank_batches(order, batch_size=2, world_size=2, rank=0, grad_accum=3)
    r1 = rank_batches(order, batch_size=2, world_size=2, rank=1, grad_accum=3)
    assert len(r0) == len(r1) == 12  # 50 // 4 = 12 global micro-batches, a multiple of 3
    assert r0[0] == [0, 1] and r1[0] == [2, 3]
    seen = [i for b in r0 + r1 for i in b]
    assert len(seen) == len(set(seen)) == 48
    # one optimizer step (3 micro-batches on each of 2 processes) = one mega-batch of 12
    step0 = sorted(i for b in r0[:3] + r1[:3] for i in b)
    assert step0 == list(range(12))


# ---- dataset and collator ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    return build_tiny_llaso(**TINY, **TINY_CONFIG)


def _dataset(root: Path, processor: Any, **kw: Any) -> TrainDataset:
    from llaso.corpus.jsonio import read_samples

    return TrainDataset(read_samples(root / "train.json"), processor, audio_root=root, **kw)


def test_dataset_skips_a_corrupt_audio_and_collates_text_only_with_audio(tmp_path: Path, tiny: Any) -> None:
    _, proc = tiny
    make_corpus(tmp_path, n=3, text_only=1, corrupt=1)
    ds = _dataset(tmp_path, proc)
    entries = [ds[i] for i in range(len(ds))]
    bad = [e for e in entries if isinstance(e, Skipped)]
    assert [b.sample_id for b in bad] == ["'bad0'"] and "bad0.wav" in bad[0].reason
    batch = Collator(proc.tokenizer.pad_token_id)(entries)
    assert batch["items"] == 4 and len(batch["skipped"]) == 1
    assert batch["input_ids"].shape[0] == 4
    n_windows = sum(
        e.input_features.shape[0] for e in entries if isinstance(e, Item) and e.input_features is not None
    )
    assert batch["input_features"].shape[0] == n_windows
    # the audio placeholders of the batch match the windows' positions (what the model checks)
    model, _ = tiny
    assert int((batch["input_ids"] == model.config.audio_token_id).sum()) == sum(
        model.audio_positions(batch["input_features"], batch["input_features_mask"])
    )
    text_row = batch["sample_ids"].index("'t0'")
    assert not bool((batch["input_ids"][text_row] == model.config.audio_token_id).any())


def test_text_cap_truncates_like_the_original_collator(tmp_path: Path, tiny: Any) -> None:
    _, proc = tiny
    make_corpus(tmp_path, n=1, text_only=1)
    full = _dataset(tmp_path, proc)
    t = full[1]
    assert isinstance(t, Item)
    capped = _dataset(tmp_path, proc, model_max_length=len(t.input_ids) - 3)[1]
    assert isinstance(capped, Item) and torch.equal(capped.input_ids, t.input_ids[:-3])
    # a cap that cuts before the audio: the sample is skipped, not silently broken
    a = _dataset(tmp_path, proc, model_max_length=3)[0]
    assert isinstance(a, Skipped) and "model_max_length=3" in a.reason


# ---- feature cache ---------------------------------------------------------------------------------
def test_cache_keys_follow_the_encoder_and_the_audio(tmp_path: Path) -> None:
    model, _ = build_tiny_llaso(**TINY, **TINY_CONFIG)
    fp = encoder_fingerprint(model)
    assert fp == encoder_fingerprint(model)
    assert fp != encoder_fingerprint(model, autocast="bf16")
    with torch.no_grad():
        model.audio_tower.conv1.weight[0, 0, 0] += 1e-3
    assert encoder_fingerprint(model) != fp
    model.projector.net[0].weight.data.add_(1.0)  # the projector is not part of the encoder's key
    assert encoder_fingerprint(model) == encoder_fingerprint(model)

    make_corpus(tmp_path, n=1)
    sample = Sample.from_record(
        {
            "voice": ["audio/0.wav"],
            "conversations": [{"from": "human", "value": "x<audio>"}, {"from": "gpt", "value": "y"}],
        }
    )
    cache = FeatureCache(tmp_path / "cache", fp)
    k1 = cache.sample_key(sample, str(tmp_path), "s")
    assert k1 == cache.sample_key(sample, str(tmp_path), "s")
    assert k1 != cache.sample_key(sample, str(tmp_path), "other settings")
    st = (tmp_path / "audio" / "0.wav").stat()
    os.utime(tmp_path / "audio" / "0.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched
    assert cache.sample_key(sample, str(tmp_path), "s") != k1
    missing = Sample.from_record(
        {
            "voice": ["audio/none.wav"],
            "conversations": [{"from": "human", "value": "<audio>"}, {"from": "gpt", "value": "y"}],
        }
    )
    assert cache.sample_key(missing, str(tmp_path), "s") is None

    cache.put(
        k1,
        input_ids=torch.tensor([1, 2]),
        labels=torch.tensor([-100, 2]),
        frames=[torch.ones(3, 4)],
        positions=[2],
    )
    entry = cache.get(k1)
    assert (
        entry is not None and entry["positions"] == [2] and torch.equal(entry["frames"][0], torch.ones(3, 4))
    )
    assert not list((cache.dir).rglob("*.tmp"))  # written atomically, nothing left behind
    (cache.dir / k1[:2] / f"{k1}.pt").write_bytes(b"truncated")
    assert cache.get(k1) is None  # unreadable entry: a miss, recomputed


def test_cached_frames_give_the_same_loss_as_the_encoder(tmp_path: Path) -> None:
    from llaso.train.trainer import TrainingModule

    model, proc = build_tiny_llaso(**TINY, **TINY_CONFIG)
    model.eval()
    make_corpus(tmp_path, n=3, text_only=1)
    plain = _dataset(tmp_path, proc)
    collate = Collator(proc.tokenizer.pad_token_id)
    batch = collate([plain[i] for i in range(len(plain))])
    module = TrainingModule(model)
    with torch.no_grad():
        ref, _ = module(batch)
    cache = FeatureCache(tmp_path / "cache", encoder_fingerprint(model))
    cached = _dataset(tmp_path, proc, cache=cache)
    first = collate([cached[i] for i in range(len(cached))])
    with torch.no_grad():
        miss_loss, new = module(first)
    assert new is not None and len(new) == first["input_features"].shape[0]
    from llaso.train.trainer import _store_frames

    _store_frames(cache, first, new)
    second = collate([cached[i] for i in range(len(cached))])
    assert "input_features" not in second and all(f is not None for f in second["cached_frames"])
    with torch.no_grad():
        hit_loss, none = module(second)
    assert none is None
    torch.testing.assert_close(miss_loss, ref)
    torch.testing.assert_close(hit_loss, ref)
    # trimmed frames are what the projector reads, nothing more
    positions = first["window_positions"]
    frames = encode_windows(model, first["input_features"], positions)
    assert [f.shape[0] for f in frames] == [min(250, p * 2) for p in positions]


def test_labelled_loss_equals_the_language_models_own_loss_and_gradients(tmp_path: Path) -> None:
    from llaso.train.trainer import has_fast_loss, labelled_loss

    model, proc = build_tiny_llaso(**TINY, **TINY_CONFIG)
    model.to(torch.float64).eval()
    assert has_fast_loss(model)
    make_corpus(tmp_path, n=4, text_only=1)
    data = _dataset(tmp_path, proc)
    batch = Collator(proc.tokenizer.pad_token_id)([data[i] for i in range(len(data))])
    assert int((batch["attention_mask"] == 0).sum()) > 0  # padding is part of what is checked

    def grads(fast: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        feats = model.get_audio_features(batch["input_features"], batch.get("input_features_mask"))
        embeds = model.embed_with_audio(batch["input_ids"], feats)
        if fast:
            loss = labelled_loss(model, embeds, batch["attention_mask"], batch["labels"])
        else:
            loss = model(
                inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=batch["labels"]
            ).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.projector.parameters()]

    ref_loss, ref_grads = grads(False)
    loss, got = grads(True)
    torch.testing.assert_close(loss, ref_loss)
    for a, b in zip(got, ref_grads, strict=True):
        torch.testing.assert_close(a, b)
    # a batch without any labelled position gives a zero loss, not a NaN
    none = torch.full_like(batch["labels"], -100)
    feats = model.get_audio_features(batch["input_features"], batch.get("input_features_mask"))
    embeds = model.embed_with_audio(batch["input_ids"], feats)
    assert float(labelled_loss(model, embeds, batch["attention_mask"], none)) == 0.0


def test_sample_average_weighs_every_sample_the_same(tmp_path: Path) -> None:
    from llaso.train.trainer import labelled_loss

    model, proc = build_tiny_llaso(**TINY, **TINY_CONFIG)
    model.to(torch.float64).eval()
    make_corpus(tmp_path, n=4, text_only=1)
    data = _dataset(tmp_path, proc)
    batch = Collator(proc.tokenizer.pad_token_id)([data[i] for i in range(len(data))])
    labels = batch["labels"].clone()
    # make the answers very unequal: the first sample keeps one labelled token only
    first = (labels[0] != -100).nonzero().flatten()
    labels[0, first[1:]] = -100
    with torch.no_grad():
        feats = model.get_audio_features(batch["input_features"], batch.get("input_features_mask"))
        embeds = model.embed_with_audio(batch["input_ids"], feats)
        per_sample = [
            model(
                inputs_embeds=embeds[i : i + 1],
                attention_mask=batch["attention_mask"][i : i + 1],
                labels=labels[i : i + 1],
            ).loss
            for i in range(labels.shape[0])
        ]
        by_sample = labelled_loss(model, embeds, batch["attention_mask"], labels, "sample")
        by_token = labelled_loss(model, embeds, batch["attention_mask"], labels, "token")
    torch.testing.assert_close(by_sample, torch.stack(per_sample).mean())
    assert abs(float(by_sample) - float(by_token)) > 1e-6  # the two rules really differ here


def test_pad_to_multiple_of_rounds_the_length_and_leaves_the_loss_unchanged(tmp_path: Path) -> None:
    from llaso.train.trainer import labelled_loss

    model, proc = build_tiny_llaso(**TINY, **TINY_CONFIG)
    model.to(torch.float64).eval()
    make_corpus(tmp_path, n=4, text_only=1)
    data = _dataset(tmp_path, proc)
    entries = [data[i] for i in range(len(data))]
    plain = Collator(proc.tokenizer.pad_token_id)(entries)
    padded = Collator(proc.tokenizer.pad_token_id, pad_to_multiple_of=16)(entries)
    width = plain["input_ids"].shape[1]
    assert width % 16 != 0  # otherwise the test checks nothing
    assert padded["input_ids"].shape[1] == -(-width // 16) * 16
    extra = slice(width, None)
    assert bool((padded["input_ids"][:, extra] == proc.tokenizer.pad_token_id).all())
    assert bool((padded["attention_mask"][:, extra] == 0).all()) and bool(
        (padded["labels"][:, extra] == -100).all()
    )
    for k in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(padded[k][:, :width], plain[k]), k
    assert padded["lengths"] == plain["lengths"]

    def loss(batch: dict) -> torch.Tensor:
        with torch.no_grad():
            feats = model.get_audio_features(batch["input_features"], batch.get("input_features_mask"))
            embeds = model.embed_with_audio(batch["input_ids"], feats)
            return labelled_loss(model, embeds, batch["attention_mask"], batch["labels"])

    torch.testing.assert_close(loss(padded), loss(plain))
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        Collator(proc.tokenizer.pad_token_id, pad_to_multiple_of=0)
