"""Zero-shot question latency against library size (1 to 1,000 hours), for exact and approximate faiss indexes.

For each library size it builds real EgoRecall libraries (catalog, float16 feature files, faiss index built by
the library's own repair path) over synthetic 512-d features at 1.875 Hz -- one 30-minute video per 3,375
rows, so 1,000 hours are 2,000 videos and 6.75 M vectors -- and asks questions through ``EgoRecall.ask``
(clips off), which is the whole zero-shot path: catalog reads, faiss search for candidate videos, similarity
curves of the candidates from their memory-mapped features, windows, NMS and cross-video ranking. Text
encoding is taken out (a stub encoder returns the question's vector) and measured on its own with a
randomly initialised ViT-B-16 (same cost as trained weights). With ``--features worlds`` the worlds' questions
are asked in their own words (``--asked words``, the default): the grammar, prompt ensembles, object prompts
and before/after events run as for a user, every prompt encoded before the timing; the videos carry recording
times (one every three hours), so "where did I put X" is answered latest-first and a before/after question
finds its event across recordings. Answers so ordered are left out of the exact-search columns (exact search
ranks by score alone).

The features are CLIP-like rather than i.i.d. noise, so that approximate indexes are tested on data with the
structure they exploit: every video is a run of scenes of 20-120 s, each scene showing one of 4,096
"concepts"; a frame is 0.6 concept + 0.5 video look + 0.62 noise (unit vectors, renormalised), and a
question is 0.3 concept + 0.95 noise, i.e. its best frames have cosine ~0.2 while the rest sit at ~0 +- 0.04
(text-to-image cosines of CLIP look like that).

Printed per (size, index): build seconds, index file size and resident memory added by loading it (RssAnon),
search latency (``Library.search``, 256 hits, as ``ask`` uses), ask latency end to end (p50/p95 ms over
``--queries`` questions after warm-up, and in brackets the process's CPU time per question, p50, which counts
the work done whatever else shares the cores), recall@100 of the frames against exact search (brute force over the
feature files), and how often the video holding the exact best frame is among the videos ``ask`` scored.

    python bench/bench_query.py                        # 1, 10, 100, 1000 hours, default index plan
    python bench/bench_query.py --hours 1 10 --queries 50
    python bench/bench_query.py --hours 1000 --indexes auto "IVF2048,SQ8"

Data go to ``bench/out/query`` (git-ignored; ~7 GB at 1,000 hours) and are deleted at the end unless
``--keep``. Generation runs in chunks of one video, so memory stays small; the largest resident set is the
index being built.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.service import EgoRecall  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.machine import cpu_model  # noqa: E402
from bench.query_data import DIM, OUT, RATE_HZ, ROWS, VIDEO_S, make_features, make_queries, unit  # noqa: E402
from bench.query_exact import CLOSE, exact_moments, exact_top, same_moments  # noqa: E402
from indexing.config import LibraryConfig  # noqa: E402
from indexing.library import Library  # noqa: E402
from indexing.vectors import effective_factory  # noqa: E402
from models.clip_encoder import EncoderSpec  # noqa: E402

RECORDED_FROM = 1.7935e9
"""The first video's recording time (November 2026); one every :data:`RECORDED_EVERY_S` after it, so a library
spans days as a person's does and questions ordered in time ("where did I put ...", "before I opened ...")
are answered as they would be there."""
RECORDED_EVERY_S = 3 * 3600.0
KEY = "bench/synthetic-512"

# hours -> index factories ("auto" = what a new library picks at that size); IVF list counts follow the
# library's own rule (sqrt of the count, a power of two).
DEFAULT_PLAN = {
    1: ["auto"],
    10: ["auto", "Seg16,SQfp16"],
    100: ["auto", "Flat"],
    1000: ["auto"],
}


def rss_anon_mb() -> float:
    """Anonymous resident memory (not the page cache of memory-mapped feature files)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


# ------------------------------------------------------------------------------------------ libraries
def build_library(root: Path, videos: int, factory: str) -> float:
    """A library whose catalog lists ``videos`` synthetic videos (feature files hard-linked); returns the
    seconds its repair took to build the index."""
    shutil.rmtree(root, ignore_errors=True)
    lib = Library.open(root, config=LibraryConfig(index_factory=factory))
    with lib.catalog.connect(write=True) as con:
        for name, value in (
            ("encoder_key", KEY),
            ("encoder_model", "bench-synthetic"),
            ("encoder_pretrained", "none"),
            ("dim", DIM),
        ):
            lib.catalog.set_setting(con, name, value)
        for i in range(videos):
            vid = f"{i:012x}"
            os.link(OUT / "features" / f"{vid}.npy", root / "features" / f"{vid}.npy")
            lib.catalog.insert(
                con,
                dict(
                    id=vid,
                    sha256=f"{i:064x}",
                    name=f"day{i // 16:03d}-part{i % 16:02d}.mp4",
                    status="ready",
                    duration=VIDEO_S,
                    fps=30.0,
                    width=1920,
                    height=1080,
                    rotation=0,
                    codec="h264",
                    container="mp4",
                    frame_count=int(VIDEO_S * 30),
                    has_audio=0,
                    size_bytes=0,
                    encoder_key=KEY,
                    dim=DIM,
                    rate_hz=RATE_HZ,
                    num_rows=ROWS,
                    media_mode="reference",
                    source_path="/nonexistent",
                    recorded_at=RECORDED_FROM + i * RECORDED_EVERY_S,
                    recorded_source="container",
                ),
            )
        lib.catalog.bump_generation(con)
    started = time.monotonic()
    lib.repair()  # the index is stale: the library rebuilds it exactly as after a crash
    seconds = time.monotonic() - started
    lib.close()
    return seconds


def ask_text(qi: int) -> str:
    """The text asked for question ``qi`` (its vector comes from :class:`QuestionVectors`): its prompts must be
    its own, or the answerer's cache of prompt vectors hands every question the first one's vector -- which
    "question 7" (read as the object "question") did from the grammar's fallback on, until this was found. Not a
    "where is X" question, which a library of recording times answers latest-first from four videos: the
    stand-in measures the search, so it asks what a plain object question asks."""
    return f"what is the q{qi} thing"


class QuestionVectors:
    """A stub text encoder: every prompt embeds to the vector of the question being asked."""

    key = KEY
    dim = DIM
    spec = EncoderSpec("bench-synthetic", "none")

    def __init__(self) -> None:
        self.current = np.zeros(DIM, np.float32)

    def encode_text(self, texts):
        return np.repeat(self.current[None], len(texts), axis=0)


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def run_index(
    hours: int,
    videos: int,
    factory: str,
    queries: np.ndarray,
    truth,
    warmup: int,
    add_video: bool = False,
    texts: list[str] | None = None,
    text_encoder=None,
    copies=None,
) -> dict:
    """One library's figures. ``texts`` with ``text_encoder``: the questions asked in words through the app's
    grammar (anchors and object prompts included), every prompt encoded before the timing; otherwise each
    question is asked as :func:`ask_text` and embeds to its vector in ``queries``. ``copies``: a
    :class:`bench.query_worlds.Copies`, to compare answers with exact search moment by moment, any copy of a
    moment counting as it."""
    root = OUT / f"lib-{hours}h-{factory.replace(',', '_')}"
    build_s = build_library(root, videos, factory)
    index_mb = (root / "index" / "frames.faiss").stat().st_size / 2**20
    gc.collect()
    before = rss_anon_mb()
    stub = QuestionVectors() if text_encoder is None else text_encoder
    service = EgoRecall(
        Settings(library=root, device="cpu", indexing=LibraryConfig(index_factory=factory)), encoder=stub
    )
    started = time.monotonic()
    resolved = service.library.state.frames.current().factory
    load_s = time.monotonic() - started
    index_ram = rss_anon_mb() - before
    library = service.library
    search_t, ask_t, ask_cpu, recall, found, equal, close, regret = [], [], [], [], [], [], [], []
    same_copies, first_copy = [], []
    right: dict[str, list[tuple[bool, bool]]] = {"ask": [], "exact": [], "all": []}
    top_video, top_bin, bounds = truth
    asked = texts if texts is not None else [ask_text(qi) for qi in range(len(queries))]
    anchored = [False] * len(asked)
    if text_encoder is not None:  # every prompt encoded, untimed (the stub embeds only the question being asked:
        # preparing its stand-in texts up front cached the stub's empty vector for all of them)
        prepared = service.answerer("zeroshot").prepare(asked, search=True)
        anchored = [p.anchor is not None and p.rewrite.relation is not None for p in prepared]
    reordered = 0
    for qi, q in enumerate(queries):  # the first ``warmup`` questions only warm caches up
        if text_encoder is None:
            stub.current = q
        t0 = time.perf_counter()
        hits = library.search(q, k=256)[0]
        t1, c1 = time.perf_counter(), time.process_time()
        answer = service.ask(asked[qi], k=5, clips=False)
        t2, c2 = time.perf_counter(), time.process_time()
        if qi < warmup:
            continue
        search_t.append(t1 - t0)
        ask_t.append(t2 - t1)
        ask_cpu.append(c2 - c1)
        exact = {(f"{int(v):012x}", int(b)) for v, b in zip(top_video[qi], top_bin[qi])}
        got = {(h.video_id, h.bin) for h in hits[:100]}
        recall.append(len(exact & got) / len(exact))
        found.append(f"{int(top_video[qi][0]):012x}" in {s.video_id for s in answer.series})
        if copies is not None and copies.truths:
            marks = [copies.answers((m.video_id, m.start, m.end), copies.truths[qi], 0.3) for m in answer.moments]
            right["all"].append((bool(marks) and marks[0], any(marks)))
        if answer.ordered is not None:
            reordered += 1  # by time or by an event found across the library: exact search ranks by score alone
            continue
        exact = exact_moments(service, asked[qi], bounds[qi])
        equal.append(same_moments(answer.moments, exact))
        got_scores = [m.score for m in answer.moments] + [-np.inf] * (len(exact) - len(answer.moments))
        close.append(all(g >= w.score - CLOSE for g, (_, w) in zip(got_scores, exact)))
        regret.append(exact[0][1].score - got_scores[0] if exact else 0.0)
        if copies is not None:
            pairs = [((m.video_id, m.start, m.end), (v, w.start, w.end)) for m, (v, w) in zip(answer.moments, exact)]
            same = [copies.same(a, b) for a, b in pairs]
            same_copies.append(len(answer.moments) == len(exact) and all(same))
            first_copy.append(bool(same) and same[0])
            truth = copies.truths[qi]
            for name, moments in (
                ("ask", [(m.video_id, m.start, m.end) for m in answer.moments]),
                ("exact", [(v, w.start, w.end) for v, w in exact]),
            ):
                marks = [copies.answers(m, truth, 0.3) for m in moments]
                right[name].append((bool(marks) and marks[0], any(marks)))
    rss_after = rss_anon_mb()
    add = add_hour(service, root) if add_video else None
    library.close()
    del service, library
    gc.collect()
    shutil.rmtree(root, ignore_errors=True)
    return dict(
        hours=hours,
        vectors=videos * ROWS,
        factory=resolved,
        asked=factory,
        build_s=build_s,
        index_mb=index_mb,
        index_ram_mb=index_ram,
        load_s=load_s,
        search=(pct(search_t, 50), pct(search_t, 95)),
        ask=(pct(ask_t, 50), pct(ask_t, 95)),
        ask_cpu=pct(ask_cpu, 50),
        recall=float(np.mean(recall)),
        found=float(np.mean(found)),
        equal=float(np.mean(equal)),
        close=float(np.mean(close)),
        regret=float(np.percentile(regret, 95)) if regret else float("nan"),
        same_copies=float(np.mean(same_copies)) if same_copies else float("nan"),
        first_copy=float(np.mean(first_copy)) if first_copy else float("nan"),
        right={
            k: (100 * np.mean([h[0] for h in v]), 100 * np.mean([h[1] for h in v]), len(v))
            for k, v in right.items()
            if v
        },
        anchored=int(sum(anchored[warmup:])),
        reordered=reordered,
        rss_mb=rss_after,
        add=add,
    )


class FeatureStub:
    """A frame encoder for ``add_hour``: synthetic features of the benchmark's kind, at encoder speed zero."""

    key = KEY
    dim = DIM
    device = "cpu"
    spec = EncoderSpec("bench-synthetic", "none")

    def __init__(self) -> None:
        self.rng = np.random.default_rng(99)

    def short_side(self) -> int:
        return 32

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        return unit(self.rng.standard_normal((len(frames), DIM), dtype=np.float32))


def add_hour(service: EgoRecall, root: Path) -> dict:
    """Add a 1-hour video to the library as the cluster path does: decode and encode it into staging (a stub
    encoder, a tiny video: not what is measured), then time the library's commit of it -- the feature file, the
    index's new vectors, the index saved atomically, the row made ready."""
    from indexing.mp4_writer import VideoWriter
    from indexing.staging import stage_video

    path = OUT / "one-hour.mp4"
    if not path.exists():
        rng = np.random.default_rng(5)
        with VideoWriter(path, 2.0, 64, 48, codec="libx264", preset="ultrafast", crf=30) as writer:
            for i in range(7200):
                grain = rng.integers(0, 8, (48, 64, 3), dtype=np.uint8)
                writer.write(np.full((48, 64, 3), (i // 120 * 37) % 256, np.uint8) + grain)  # a new look a minute
    library = service.library
    before = library.state.frames.current().factory
    started = time.monotonic()
    staged = stage_video(path, library.root, FeatureStub(), rate_hz=RATE_HZ, copy_media=False)
    stage_s = time.monotonic() - started
    started = time.monotonic()
    rec = library.commit_staged(staged)
    commit_s = time.monotonic() - started
    index = library.state.frames.current()
    return dict(
        stage_s=stage_s, commit_s=commit_s, rows=rec.num_rows, rebuilt=index.factory != before, factory=index.factory
    )


def text_encoding_ms(repeats: int = 20) -> tuple[float, float, int]:
    import torch

    from app.answering import prompt_vectors
    from models.clip_encoder import ClipEncoder
    from models.questions import rewrite_question

    clip = ClipEncoder.load(EncoderSpec("ViT-B-16", "none"), device="cpu")
    rewrite = rewrite_question("Where did I put my keys?")
    times = []
    with torch.inference_mode():
        for i in range(repeats + 2):
            t0 = time.perf_counter()
            prompt_vectors(clip, [rewrite])
            if i >= 2:
                times.append(time.perf_counter() - t0)
    return pct(times, 50), pct(times, 95), len(rewrite.prompts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", nargs="+", type=int, default=sorted(DEFAULT_PLAN))
    parser.add_argument(
        "--indexes",
        nargs="+",
        default=None,
        help="factories for every size (default: the plan in this script; 'auto' = the library's own choice)",
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--features",
        choices=("worlds", "concepts"),
        default="concepts",
        help="worlds: real pipeline features of rendered worlds, tiled (bench/query_worlds.py); concepts: the "
        "random concept model",
    )
    parser.add_argument(
        "--asked",
        choices=("words", "vectors"),
        default="words",
        help="worlds: ask each question in its words through the app's grammar (anchors and object prompts "
        "included; the default) or as a stand-in text that embeds to its vector (the rows before 2026-12-07)",
    )
    parser.add_argument("--threads", type=int, default=2, help="faiss / BLAS threads")
    parser.add_argument("--keep", action="store_true", help="keep bench/out/query (feature files) afterwards")
    parser.add_argument("--no-text", action="store_true", help="skip the text-encoding measurement")
    parser.add_argument(
        "--no-add-hour",
        dest="add_hour",
        action="store_false",
        help="skip timing the commit of a 1-hour video into the largest library",
    )
    args = parser.parse_args()

    import faiss

    faiss.omp_set_num_threads(args.threads)
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(
        f"{cpu_model()}, {os.cpu_count()} cores, {mem_gb:.0f} GB RAM, faiss {faiss.__version__} (CPU, "
        f"{args.threads} threads), numpy {np.__version__}, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{args.features} features: {DIM}-d float16 at {RATE_HZ} Hz, 30-minute videos ({ROWS} rows each); "
        f"{args.queries} questions, {args.warmup} warm-up"
    )
    videos_needed = max(math.ceil(h * 3600 / VIDEO_S) for h in args.hours)
    source, copies = None, None
    if args.features == "worlds":
        from bench.query_worlds import Copies, WorldSource

        global OUT
        OUT = OUT.with_name("query-worlds")
        source = WorldSource(DIM, args.seed)
        copies = Copies(source, args.seed, ROWS, RATE_HZ)
    try:
        shown = make_features(OUT / "features", videos_needed, args.seed, source)
        texts, text_encoder = None, None
        if source is None:
            queries = make_queries(args.queries + args.warmup, args.seed, shown)
        else:
            queries, texts, copies.truths = source.questions(args.queries + args.warmup, args.seed)
            print(f"questions: {len(queries)} of the worlds' own, e.g. {texts[args.warmup]!r}, asked as {args.asked}")
            if args.asked == "words":
                text_encoder = source.text_encoder(KEY, QuestionVectors.spec)
            else:
                texts = None
        # Warm-up questions come first; the measured ones follow.
        header = (
            f"{'hours':>5} {'vectors':>10} {'index':>14} {'build s':>8} {'file MB':>8} {'RAM MB':>7} "
            f"{'search p50/p95 ms':>18} {'ask p50/p95 [CPU] ms':>23} {'recall@100':>10} {'best video':>10} "
            f"{'top-5 exact':>11} {'top-5 close':>11} {'regret p95':>10} {'RssAnon MB':>10}"
        )
        rows = []
        for hours in sorted(args.hours):
            videos = math.ceil(hours * 3600 / VIDEO_S)
            started = time.monotonic()
            truth = exact_top(OUT / "features", videos, queries)
            print(
                f"{hours} h: exact top-100 of {len(queries)} questions by brute force in "
                f"{time.monotonic() - started:.0f} s",
                flush=True,
            )
            for factory in args.indexes or DEFAULT_PLAN.get(hours, ["auto"]):
                resolved = effective_factory(factory, videos * ROWS, DIM)
                if resolved.startswith("Flat") and videos * ROWS * DIM * 4 > 4 * 2**30:
                    print(f"{hours} h: skipping {resolved}: {videos * ROWS * DIM * 4 / 2**30:.1f} GB of float32")
                    continue
                add_video = args.add_hour and hours == max(args.hours) and factory == "auto"
                r = run_index(
                    hours, videos, factory, queries, truth, args.warmup, add_video, texts, text_encoder, copies
                )
                label = r["factory"] + (" (auto)" if r["asked"] == "auto" else "")
                row = (
                    f"{r['hours']:>5} {r['vectors']:>10,} {label:>14} {r['build_s']:>8.1f} {r['index_mb']:>8.0f} "
                    f"{r['index_ram_mb']:>7.0f} {r['search'][0]:>8.1f} / {r['search'][1]:>6.1f} "
                    f"{r['ask'][0]:>7.1f} / {r['ask'][1]:>6.1f} [{r['ask_cpu']:>5.1f}] {r['recall']:>10.3f} "
                    f"{r['found'] * 100:>9.1f}% {r['equal'] * 100:>10.1f}% {r['close'] * 100:>10.1f}% "
                    f"{r['regret']:>10.4f} {r['rss_mb']:>10.0f}"
                )
                if not rows:
                    print(header)
                rows.append(row)
                if copies is not None:
                    rows.append(
                        f"      any copy of a moment counting as it: top-5 the same moments as exact search "
                        f"{r['same_copies'] * 100:.1f} %, rank 1 {r['first_copy'] * 100:.1f} %"
                    )
                    right = r["right"]
                    if "all" in right:
                        rows.append(
                            "      R@1 / R@5 at IoU 0.3, a copy of a true answer counting: ask {:.1f} / {:.1f} ({} "
                            "questions); on the {} also answered by exact search: ask {:.1f} / {:.1f}, exact search "
                            "{:.1f} / {:.1f}".format(
                                *right["all"], right["ask"][2], *right["ask"][:2], *right["exact"][:2]
                            )
                        )
                if texts is not None:
                    rows.append(
                        f"      asked in words: {r['anchored']} questions with an event anchor (its own search), "
                        f"{r['reordered']} answered in time or event order (left out of the exact columns)"
                    )
                if r["add"]:
                    a = r["add"]
                    rows.append(
                        f"      adding a 1-hour video ({a['rows']} rows) to it: commit {a['commit_s']:.2f} s "
                        f"(staging with a stub encoder {a['stage_s']:.1f} s), index {a['factory']}, "
                        f"{'rebuilt' if a['rebuilt'] else 'appended, no rebuild'}"
                    )
                print(row, flush=True)
        print("\n" + header)
        for row in rows:
            print(row)
        if not args.no_text:
            p50, p95, n = text_encoding_ms()
            print(
                f"\ntext encoding (ViT-B-16, random weights, {n} prompts of one question, CPU): "
                f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"
            )
    finally:
        if not args.keep:
            shutil.rmtree(OUT, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
