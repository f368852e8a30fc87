"""Indexing shortcuts on the report worlds: do answers hold when the library is indexed another way?

    python bench/bench_index_variants.py --reuse-still 8          # still frames reuse a feature
    python bench/bench_index_variants.py --quantize openvino      # the image tower on another runtime
    python bench/bench_index_variants.py --skip-at-fps 30         # skipped non-reference pictures, at 30 fps

Two shortcuts make indexing faster and may move answers. ``DecodeConfig.still_frame_diff`` (``index
--reuse-still LEVELS``) lets a sampled frame whose 1/8-scale grey thumbnail differs from the last encoded frame's
by less than LEVELS reuse that frame's feature; ``--quantize`` (``int8``, ``openvino``) runs the image tower on
another runtime (its own encoder key). Either becomes a default only if answers hold within 1 point on the
*report* worlds (the scale issue's rule; LEVELS was chosen on the tuning world, bench/README.md). For each report
world of ``bench_generalization.py`` (run it first: it builds the worlds, their encoders and checkpoints), the
world's held-out videos are indexed again that way, in a library of their own, and its held-out queries answered
by zero-shot and by the world's trained checkpoint on both libraries: R@1@0.3 / R@5@0.3 per world and pooled,
frames reused, the features' cosine to the float tower's, index wall time. A quantised library has another
encoder key, so a checkpoint trained on float features is refused there (said in the table).

``--skip-at-fps FPS`` measures ``DecodeConfig.skip_non_reference``, which only acts at 20 fps and more: the
worlds are rendered at 8 fps, so each report world is rendered again at FPS (the same plans, events and
questions; x264 with B-frames, as cameras write), and its held-out videos are indexed twice with the world's
encoder -- every picture decoded ("off") and the non-reference ones skipped ("on") -- and answered on both.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench.bench_generalization import WORLDS, score  # noqa: E402
from bench.checkpoint_copies import copy_checkpoint  # noqa: E402
from bench.machine import cpu_model  # noqa: E402


def reindexed(base, work: Path, levels: float, quantize: str, videos: list[Path], skip: bool = True):
    """A library of ``videos`` indexed with the base library's encoder, still-frame reuse at ``levels`` (0: off),
    its image tower on ``quantize``'s runtime ("": torch float) and non-reference pictures skipped or not."""
    from app.service import EgoRecall
    from app.settings import Settings

    decode = replace(base.settings.indexing.decode, still_frame_diff=float(levels), skip_non_reference=skip)
    indexing = replace(base.settings.indexing, decode=decode)
    service = EgoRecall(
        Settings(library=work, indexing=indexing),
        encoder_spec=replace(base.library.encoder_spec, quantize=quantize),
    )
    have = {Path(v.name).stem for v in service.videos()}
    started = time.monotonic()
    for result in service.index([v for v in videos if v.stem not in have]):
        assert result.ok, result.error
    return service, time.monotonic() - started


def rendered_at(world: Path, fps: float, out: Path) -> Path:
    """The world at ``world`` rendered again at ``fps`` into ``out`` (once): same seed, plans and questions."""
    import json

    from training.synthworld.generate import generate_world
    from training.synthworld.plan import SynthConfig

    if not (out / "world.json").is_file():
        config = json.loads((world / "world.json").read_text())["config"]
        generate_world(out, SynthConfig(**{**config, "fps": float(fps)}), overwrite=True)
    again = [(q["clip_uid"], q["video_start_sec"], q["video_end_sec"]) for q in _queries(out)]
    if again != [(q["clip_uid"], q["video_start_sec"], q["video_end_sec"]) for q in _queries(world)]:
        raise SystemExit(f"{out}: the world rendered at {fps:g} fps asks other questions than {world}")
    return out


def _queries(world: Path) -> list[dict]:
    import json

    return [q for v in json.loads((world / "world.json").read_text())["videos"] for q in v["queries"]]


def repeated_rows(service) -> int:
    """Feature rows equal to the row before: the frames that reused a still predecessor's feature."""
    maps = service.library.features_of(service.videos())
    return int(sum(np.all(m[1:] == m[:-1], axis=1).sum() for m in maps.values()))


def feature_cosines(base, variant) -> np.ndarray:
    """Cosine of every frame's feature in ``variant`` to the same frame's in ``base`` (videos matched by name)."""
    by_name = {v.name: v for v in base.videos()}
    pairs = [(by_name[v.name], v) for v in variant.videos() if v.name in by_name]
    a = base.library.features_of([b for b, _ in pairs])
    b = variant.library.features_of([v for _, v in pairs])
    rows = [
        np.sum(a[x.id].astype(np.float32) * b[y.id].astype(np.float32), axis=1)
        for x, y in pairs
        if a[x.id].shape == b[y.id].shape
    ]
    return np.concatenate(rows) if rows else np.zeros(0)


def answers(service, name: str, dataset, source, queries) -> dict | None:
    """``score`` of one mode, or None when the library refuses it (a checkpoint of another encoder key)."""
    from models.errors import EgoRecallError

    try:
        answerer = service.answerer(name)
    except EgoRecallError as exc:
        logging.getLogger(__name__).warning("%s refused on %s: %s", name, service.library.root, exc)
        return None
    return score(answerer, dataset, source, queries)


def pair(figures: dict | None) -> str:
    return "refused" if figures is None else f"{figures['R1@0.3']:.1f} / {figures['R5@0.3']:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reuse-still", "--levels", dest="levels", type=float, default=0.0, metavar="LEVELS")
    ap.add_argument("--quantize", choices=("", "int8", "openvino"), default="")
    ap.add_argument("--skip-at-fps", type=float, default=0.0, metavar="FPS")
    ap.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "out" / "generalization")
    args = ap.parse_args(argv)
    if not args.levels and not args.quantize and not args.skip_at_fps:
        ap.error("name a variant: --reuse-still LEVELS, --quantize int8|openvino or --skip-at-fps FPS")
    variant = " + ".join(
        v
        for v in (
            f"still reuse at {args.levels:g} levels" if args.levels else "",
            args.quantize,
            f"non-reference pictures skipped, rendered at {args.skip_at_fps:g} fps" if args.skip_at_fps else "",
        )
        if v
    )
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from app.service import EgoRecall
    from app.settings import Settings
    from training.features import LibraryClipFeatures
    from training.nlq import load_nlq

    rows, pooled, cosines = [], {"off": [], "on": []}, []
    for style, seed in [(style, seed) for family, style, seed in WORLDS if family == "report"]:
        root = args.work / f"{style}-{seed}" / "library"
        if not (root / "library.sqlite").exists():
            raise SystemExit(f"{root} is missing: run bench/bench_generalization.py first")
        base = origin = EgoRecall(Settings(library=root))
        world = root / "demo" / "world"
        dataset = load_nlq(world / "nlq_val.json")
        queries = dataset.evaluation_queries()
        names = {clip.video_uid for clip in dataset.clips.values()}
        videos = [v for v in sorted((world / "videos").glob("*.mp4")) if v.stem in names]
        folder = "still-" + f"{args.levels:g}" + (f"-{args.quantize}" if args.quantize else "")
        here = args.work / f"{style}-{seed}"
        if args.skip_at_fps:  # both sides at the new frame rate: every picture decoded, then skipping
            fast = rendered_at(world, args.skip_at_fps, here / f"world-{args.skip_at_fps:g}fps")
            videos = [fast / "videos" / v.name for v in videos]
            folder += f"-{args.skip_at_fps:g}fps"
            base, _ = reindexed(base, here / (folder + "-whole"), args.levels, args.quantize, videos, skip=False)
        still, index_s = reindexed(base, here / folder, args.levels, args.quantize, videos)
        cosines.append(feature_cosines(base, still))
        trained = origin.settings.checkpoints_dir
        checkpoint = next(c.name for c in sorted(trained.iterdir()) if c.name.endswith("-final"))
        for copy in (base, still):  # copy_checkpoint leaves the original where it is
            copy_checkpoint(trained / checkpoint, copy.settings.checkpoints_dir / checkpoint)
        reused = repeated_rows(still), sum(v.num_rows for v in still.videos())
        for label, service in (("off", base), ("on", still)):
            source = LibraryClipFeatures(service.library)
            figures = {
                mode: answers(service, name, dataset, source, queries)
                for mode, name in (("zeroshot", "zeroshot"), ("trained", checkpoint))
            }
            pooled[label].append((len(queries), figures))
            rows.append((f"{style}-{seed}", label, figures, reused if label == "on" else (0, reused[1]), index_s))
    print(f"# Indexed with {variant}, on the report worlds")
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d')}\n"
    )
    print("| world | variant | frames reused | zero-shot R@1@0.3 / R@5@0.3 | trained R@1@0.3 / R@5@0.3 |")
    print("|---|---|---|---|---|")
    for world, label, f, (n_reused, n), _ in rows:
        print(f"| {world} | {label} | {n_reused} of {n} | {pair(f['zeroshot'])} | {pair(f['trained'])} |")
    for label, parts in pooled.items():
        cells = []
        for mode in ("zeroshot", "trained"):
            answered = [(n, f[mode]) for n, f in parts if f[mode] is not None]
            total = sum(n for n, _ in answered)
            cells.append(
                "refused"
                if not total
                else " / ".join(f"{sum(n * f[key] for n, f in answered) / total:.1f}" for key in ("R1@0.3", "R5@0.3"))
            )
        print(f"| pooled | {label} | | {cells[0]} | {cells[1]} |")
    cos = np.concatenate(cosines) if cosines else np.zeros(0)
    if cos.size:
        print(
            f"\nfeature cosine to the float features, every frame: min {cos.min():.5f}, p1 "
            f"{np.percentile(cos, 1):.5f}, mean {cos.mean():.5f} ({cos.size} frames)"
        )
    print(f"(spread: per-world figures above; {np.mean([r[4] for r in rows]):.0f} s to re-index a world)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
