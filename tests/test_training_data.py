"""Training data: query selection (few-shot, narrations), items (jitter, crops), batches, samplers, text cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.text_tokens import TextEncoderSpec, load_text_encoder
from tests.training_fixtures import OBJECTS, TINY_TEXT, make_task
from training.dataset import (
    ClipStore,
    Collate,
    EpochBatchSampler,
    ItemOptions,
    QueryDataset,
    crop_around,
    merge_nlq_files,
    select_training_queries,
)
from training.features import DirectoryClipFeatures
from training.text_features import TextFeatureCache, pad_tokens


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return make_task(tmp_path_factory.mktemp("task"))


@pytest.fixture(scope="module")
def encoder():
    return load_text_encoder(TextEncoderSpec(**TINY_TEXT), "cpu")


class CountingEncoder:
    """Wraps a token encoder and counts the texts it was asked to encode."""

    def __init__(self, inner):
        self.inner, self.key, self.dim, self.read, self.calls = inner, inner.key, inner.dim, inner.read, []

    def encode(self, texts):
        self.calls.extend(texts)
        return self.inner.encode(texts)


def _dataset(task, encoder, **options):
    merged = merge_nlq_files([task["train"]])
    source = DirectoryClipFeatures(task["features"])
    data = select_training_queries(merged, source, narrations=True)
    texts = TextFeatureCache.for_encoder(encoder)
    texts.ensure(data.texts)
    return QueryDataset(data.queries, ClipStore(source, data.clips), texts, ItemOptions(**options), seed=3), data


# ---------------------------------------------------------------------------------------------- selection
def test_files_listed_twice_do_not_duplicate_queries(task):
    once = merge_nlq_files([task["train"]])
    both = merge_nlq_files([task["nlq_train"], task["train"]])
    assert len(both.queries) == len(once.queries)
    assert len({q.key for q in both.queries}) == len(both.queries)


def test_few_shot_keeps_narrations_and_a_share_of_nlq_clips(task):
    merged = merge_nlq_files([task["train"]])
    source = DirectoryClipFeatures(task["features"])
    full = select_training_queries(merged, source, narrations=True)
    few = select_training_queries(merged, source, narrations=True, nlq_fraction=0.5, few_shot_seed=1)
    zero = select_training_queries(merged, source, narrations=True, nlq_fraction=0.0)
    nlq_only = select_training_queries(merged, source, narrations=False, nlq_fraction=0.5, few_shot_seed=1)
    n_clips = len(full.clips)
    assert full.summary["nlq_queries"] == n_clips * len(OBJECTS) == full.summary["narration_queries"]
    assert few.summary["narration_queries"] == full.summary["narration_queries"]
    assert len({q.clip_uid for q in few.queries if not q.is_narration}) == n_clips // 2
    assert zero.summary["nlq_queries"] == 0 and zero.summary["narration_queries"] > 0
    assert nlq_only.summary["narration_queries"] == 0
    assert {q.key for q in nlq_only.queries} == {q.key for q in few.queries if not q.is_narration}


def test_clips_without_features_are_skipped_and_counted(task, tmp_path):
    import shutil

    partial = tmp_path / "features"
    shutil.copytree(task["features"], partial)
    (partial / "clip-00.npy").unlink()
    data = select_training_queries(merge_nlq_files([task["train"]]), DirectoryClipFeatures(partial), narrations=True)
    assert data.summary["clips_without_features"] == 1
    assert "clip-00" not in data.clips and all(q.clip_uid != "clip-00" for q in data.queries)


# ---------------------------------------------------------------------------------------------- items
def test_items_carry_features_answer_bins_and_tokens(task, encoder):
    ds, data = _dataset(task, encoder, train=False)
    for i, q in enumerate(ds.queries[:8]):
        item = ds[i]
        assert item["video"].dtype == np.float32 and item["video"].shape == (40, 16)
        assert 0 <= item["start"] <= item["end"] < 40
        assert item["tokens"].shape[1] == encoder.dim and item["is_narration"] == q.is_narration
        if not q.is_narration:  # the fixture marks exactly the answer bins
            s, e = round(q.start * 1.875), round(q.end * 1.875) - 1
            assert (item["start"], item["end"]) == (s, e)


def test_jitter_widens_only_narrations_and_only_in_training(task, encoder):
    plain, _ = _dataset(task, encoder, train=False, jitter_factor=2.5)
    jit, _ = _dataset(task, encoder, train=True, jitter_factor=2.5)
    widened = 0
    for i, q in enumerate(jit.queries):
        a, b = plain[(i, 0)], jit[(i, 0)]
        if not q.is_narration:
            assert (a["start"], a["end"]) == (b["start"], b["end"])
        else:
            assert b["start"] <= a["start"] and b["end"] >= a["end"]  # covers the original
            widened += (b["end"] - b["start"]) > (a["end"] - a["start"])
    assert widened > 0


def test_items_are_a_function_of_index_and_epoch(task, encoder):
    ds, _ = _dataset(task, encoder, train=True, jitter_factor=5.0, crop_probability=1.0)
    narration = next(i for i, q in enumerate(ds.queries) if q.is_narration)
    first, again = ds[(narration, 4)], ds[(narration, 4)]
    assert (first["start"], first["end"]) == (again["start"], again["end"])
    np.testing.assert_array_equal(first["video"], again["video"])
    shapes = {ds[(narration, e)]["video"].shape[0] for e in range(8)}
    assert len(shapes) > 1  # the crop changes with the epoch


def test_speed_changes_the_clip_length_with_the_answer_inside_only_in_training(task, encoder):
    plain, _ = _dataset(task, encoder, train=False, speed_probability=1.0)
    fast, _ = _dataset(task, encoder, train=True, speed_probability=1.0, speed_range=(0.5, 0.5))
    for i in range(len(fast.queries)):
        a, b = plain[(i, 0)], fast[(i, 0)]
        n = a["video"].shape[0]
        assert b["video"].shape[0] == round(n * 0.5)  # every training item twice as fast; evaluation untouched
        assert 0 <= b["start"] <= b["end"] < b["video"].shape[0]
        assert abs(b["start"] - a["start"] / 2) <= 1 and abs(b["end"] - a["end"] / 2) <= 1


def test_negatives_ask_of_another_videos_clip_that_never_names_the_object(task, encoder):
    merged = merge_nlq_files([task["train"]])
    source = DirectoryClipFeatures(task["features"])
    data = select_training_queries(merged, source, narrations=True)
    # clips 03-05 never name the red ball (neither a question nor a narration): the only hosts for its questions
    silent = {"clip-03", "clip-04", "clip-05"}
    queries = [q for q in data.queries if not (q.clip_uid in silent and "red ball" in q.text)]
    texts = TextFeatureCache.for_encoder(encoder)
    texts.ensure(data.texts)
    store = ClipStore(source, data.clips)
    ds = QueryDataset(queries, store, texts, ItemOptions(negative_probability=1.0, max_bins=30), seed=3)
    seen_hosts = set()
    for i, q in enumerate(queries):
        item = ds[(i, 0)]
        if "red ball" in q.text and q.clip_uid not in silent:
            assert item["answerable"] is False and item["video"].shape[0] <= 30
            # the host's features, not the question's own clip
            host = next(u for u in silent if np.isin(item["video"][0], store.get(u).features).all())
            seen_hosts.add(host)
        else:
            assert item["answerable"] is True  # every other clip names every other object: no host
    assert len(seen_hosts) >= 2  # hosts are drawn, not fixed
    plain = QueryDataset(queries, store, texts, ItemOptions(train=False, negative_probability=1.0), seed=3)
    assert all(plain[(i, 0)]["answerable"] for i in range(len(queries)))  # evaluation asks no negatives


def test_a_question_names_its_object_and_place_in_content_words():
    from training.negatives import asked_words, content_words

    assert asked_words("Where did I put my car keys?") == {"car", "key"}
    assert asked_words("what did I take out of the fridge?") == {"fridge"}
    assert asked_words("Where is the mug?") <= content_words("#C C puts the mugs in the sink")  # a host that names it


def test_collate_gives_questions_without_an_answer_micro_batches_of_their_own(task, encoder):
    ds, _ = _dataset(task, encoder, train=True)
    items = [dict(ds[(i, 0)], answerable=i % 3 != 0) for i in range(10)]
    parts = Collate(micro_batch_size=3)(items)
    kinds = [set(p.answerable.tolist()) for p in parts]
    assert all(len(k) == 1 for k in kinds)  # never mixed
    assert kinds[0] == {False} and kinds[-1] == {True}  # absent first: the last (DDP's synced) one is answerable
    assert sum(len(p) for p in parts if not p.answerable.any()) == 4


def test_long_clips_are_cut_to_max_bins_around_the_answer(task, encoder):
    ds, _ = _dataset(task, encoder, train=True, max_bins=12)
    for i in range(len(ds.queries)):
        item = ds[(i, 0)]
        assert item["video"].shape[0] == 12 and 0 <= item["start"] <= item["end"] < 12


def test_crop_around_keeps_the_answer():
    feats = np.arange(100, dtype=np.float32)[:, None]
    rng = np.random.default_rng(0)
    for start, end in [(0, 3), (50, 60), (96, 99), (10, 80)]:
        for r in (rng, None):
            out, s, e = crop_around(feats, start, end, 30, r)
            assert out.shape[0] == 30 and 0 <= s <= e < 30
            if end - start < 30:
                assert out[s, 0] == start and out[e, 0] == end
            else:
                assert out[s, 0] == start  # too long: keeps its start


def test_resampling_puts_every_clip_on_the_same_number_of_bins(task, encoder):
    merged = merge_nlq_files([task["train"]])
    source = DirectoryClipFeatures(task["features"])
    store = ClipStore(source, merged.clips, resample_to=20)
    cf = store.get("clip-00")
    assert cf.features.shape == (20, 16) and cf.grid.num_bins == 20
    assert cf.grid.duration == pytest.approx(40 / 1.875)


# ---------------------------------------------------------------------------------------------- batches
def test_collate_pads_right_and_splits_micro_batches(task, encoder):
    ds, _ = _dataset(task, encoder, train=True, crop_probability=1.0)
    items = [ds[(i, 1)] for i in range(10)]
    (whole,) = Collate()(items)
    assert whole.video.shape[0] == 10 and whole.video.shape[1] == max(it["video"].shape[0] for it in items)
    for i, it in enumerate(items):
        n = it["video"].shape[0]
        assert whole.video_mask[i].sum() == n and bool(whole.video_mask[i, :n].all())
        assert whole.query_mask[i].sum() == len(it["tokens"])
        assert torch.all(whole.video[i, n:] == 0)
    parts = Collate(micro_batch_size=4)(items)
    assert [len(p) for p in parts] == [4, 4, 2]
    lengths = [int(m.sum()) for p in parts for m in p.video_mask]
    assert lengths == sorted(lengths)  # sorted by length, so micro-batches pad little
    assert sorted(k for p in parts for k in p.keys) == sorted(it["key"] for it in items)


def test_pad_tokens():
    out, mask = pad_tokens([np.ones((3, 4), np.float16), np.ones((5, 4), np.float16)])
    assert out.shape == (2, 5, 4) and out.dtype == torch.float32
    assert mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5]


def test_sampler_splits_epochs_over_processes_and_resumes_mid_epoch():
    n, batch = 23, 4
    ranks = [EpochBatchSampler(n, batch, seed=5, rank=r, world_size=2) for r in range(2)]
    for s in ranks:
        s.set_epoch(3)
    batches = [list(s) for s in ranks]
    assert len(batches[0]) == len(batches[1]) == ranks[0].batches_per_epoch == 3
    seen = {i for b in batches for chunk in b for i, _ in chunk}
    assert seen == set(range(n))  # every item, the padding repeats a few
    assert all(e == 3 for b in batches for chunk in b for _, e in chunk)
    single = EpochBatchSampler(n, batch, seed=5)
    single.set_epoch(2)
    full = list(single)
    single.set_epoch(2, skip_batches=4)
    assert list(single) == full[4:]
    single.set_epoch(3)
    assert list(single) != full  # reshuffled per epoch


# ---------------------------------------------------------------------------------------------- text cache
def test_text_features_are_computed_once_per_normalised_text(encoder):
    counting = CountingEncoder(encoder)
    cache = TextFeatureCache.for_encoder(counting)
    texts = ["Where is the red ball?", "where is the red ball", "WHERE IS THE RED BALL?", "c touches the blue cup"]
    assert cache.ensure(texts) == 2 and len(counting.calls) == 2
    assert cache.ensure(texts) == 0 and len(counting.calls) == 2
    feats, mask = encoder.encode(["where is the red ball"])
    np.testing.assert_allclose(cache.get("Where is the red ball?"), feats[0][mask[0]], atol=1e-2)
    with pytest.raises(KeyError):
        cache.get("something never encoded")


def test_disk_cache_is_reused_without_an_encoder(encoder, tmp_path):
    counting = CountingEncoder(encoder)
    first = TextFeatureCache.for_encoder(counting, cache_dir=tmp_path)
    first.ensure(["where is the red ball", "where is the blue cup"])
    (tmp_path / "junk").mkdir()  # unrelated files are ignored
    second = TextFeatureCache(None, encoder.key, encoder.dim, cache_dir=tmp_path, read=encoder.read)
    assert len(second) == 2
    np.testing.assert_array_equal(
        np.asarray(second.get("where is the blue cup")), np.asarray(first.get("where is the blue cup"))
    )
    with pytest.raises(RuntimeError, match="no text encoder"):
        second.ensure(["a new question"])
    other = TextFeatureCache(None, "another-encoder", encoder.dim, cache_dir=tmp_path)
    assert len(other) == 0  # one folder per encoder key
