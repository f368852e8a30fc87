"""Still-frame reuse on the report worlds: do answers hold when still frames reuse a feature?

    python bench/bench_still.py [--levels 8] [--quick]

``DecodeConfig.still_frame_diff`` (``index --reuse-still LEVELS``) lets a sampled frame whose 1/8-scale grey
thumbnail differs from the last encoded frame's by less than LEVELS reuse that frame's feature. It becomes the
default only if every answering mode holds within 1 point on the *report* worlds (the scale issue's rule); LEVELS
was chosen on the tuning world (bench/README.md, indexing). For each report world of ``bench_generalization.py``
(run it first: it builds the worlds, their encoders and checkpoints), the world's held-out videos are indexed
again with reuse on, in a library of their own, and its held-out queries answered by zero-shot and by the world's
trained checkpoint on both libraries: R@1@0.3 / R@5@0.3 per world and pooled, frames reused, index wall time.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench.bench_generalization import WORLDS, score  # noqa: E402
from bench.machine import cpu_model  # noqa: E402


def reindexed(base, work: Path, levels: float, videos: list[Path]):
    """A library of ``videos`` indexed with the base library's encoder and still-frame reuse at ``levels``."""
    from app.service import EgoRecall
    from app.settings import Settings
    from models.clip_encoder import EncoderSpec

    settings = base.library.settings
    indexing = replace(
        base.settings.indexing, decode=replace(base.settings.indexing.decode, still_frame_diff=float(levels))
    )
    service = EgoRecall(
        Settings(library=work, indexing=indexing),
        encoder_spec=EncoderSpec(settings.encoder_model, settings.encoder_pretrained),
    )
    have = {Path(v.name).stem for v in service.videos()}
    started = time.monotonic()
    for result in service.index([v for v in videos if v.stem not in have]):
        assert result.ok, result.error
    return service, time.monotonic() - started


def repeated_rows(service) -> int:
    """Feature rows equal to the row before: the frames that reused a still predecessor's feature."""
    maps = service.library.features_of(service.videos())
    return int(sum(np.all(m[1:] == m[:-1], axis=1).sum() for m in maps.values()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", type=float, default=8.0)
    ap.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "out" / "generalization")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from app.service import EgoRecall
    from app.settings import Settings
    from training.features import LibraryClipFeatures
    from training.nlq import load_nlq

    rows, pooled = [], {"off": [], "on": []}
    for style, seed in [(style, seed) for family, style, seed in WORLDS if family == "report"]:
        root = args.work / f"{style}-{seed}" / "library"
        if not (root / "library.sqlite").exists():
            raise SystemExit(f"{root} is missing: run bench/bench_generalization.py first")
        base = EgoRecall(Settings(library=root))
        world = root / "demo" / "world"
        dataset = load_nlq(world / "nlq_val.json")
        queries = dataset.evaluation_queries()
        names = {clip.video_uid for clip in dataset.clips.values()}
        videos = [v for v in sorted((world / "videos").glob("*.mp4")) if v.stem in names]
        work = args.work / f"{style}-{seed}" / f"still-{args.levels:g}"
        still, index_s = reindexed(base, work, args.levels, videos)
        checkpoint = next(c.name for c in sorted(base.settings.checkpoints_dir.iterdir()) if c.name.endswith("-final"))
        if not (still.settings.checkpoints_dir / checkpoint).exists():
            shutil.copytree(base.settings.checkpoints_dir / checkpoint, still.settings.checkpoints_dir / checkpoint)
        reused = repeated_rows(still), sum(v.num_rows for v in still.videos())
        for label, service in (("off", base), ("on", still)):
            source = LibraryClipFeatures(service.library)
            figures = {
                mode: score(service.answerer(name), dataset, source, queries)
                for mode, name in (("zeroshot", "zeroshot"), ("trained", checkpoint))
            }
            pooled[label].append((len(queries), figures))
            rows.append((f"{style}-{seed}", label, figures, reused if label == "on" else (0, reused[1]), index_s))
    print(f"# Still-frame reuse at {args.levels:g} levels on the report worlds")
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d')}\n"
    )
    print("| world | reuse | frames reused | zero-shot R@1@0.3 / R@5@0.3 | trained R@1@0.3 / R@5@0.3 |")
    print("|---|---|---|---|---|")
    for world, label, f, (n_reused, n), _ in rows:
        z, t = f["zeroshot"], f["trained"]
        print(
            f"| {world} | {label} | {n_reused} of {n} | {z['R1@0.3']:.1f} / {z['R5@0.3']:.1f} | "
            f"{t['R1@0.3']:.1f} / {t['R5@0.3']:.1f} |"
        )
    for label, parts in pooled.items():
        total = sum(n for n, _ in parts)
        mean = {
            (mode, key): sum(n * f[mode][key] for n, f in parts) / total
            for mode in ("zeroshot", "trained")
            for key in ("R1@0.3", "R5@0.3")
        }
        print(
            f"| pooled | {label} | | {mean[('zeroshot', 'R1@0.3')]:.1f} / {mean[('zeroshot', 'R5@0.3')]:.1f} | "
            f"{mean[('trained', 'R1@0.3')]:.1f} / {mean[('trained', 'R5@0.3')]:.1f} |"
        )
    print(f"\n(spread: per-world figures above; {np.mean([r[4] for r in rows]):.0f} s to re-index a world)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
