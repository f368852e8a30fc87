"""How fast the NLQ data layer is at Ego4D scale; prints its figures (run: python bench/nlq_data.py).

* metrics fast path (``score_windows``) on 4,554 queries (v2 val) and on 50,000;
* ``evaluate`` from files (parse + validate + score) on a v2-val-sized submission;
* EgoClip reading + NaQ building on ``--rows`` generated narrations (EgoClip has 3.8 M; the time scales
  linearly, so the figure is also extrapolated).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.metrics import evaluate, score_windows  # noqa: E402
from training.naq import build_naq  # noqa: E402
from training.narrations import load_narrations  # noqa: E402
from training.nlq import load_nlq, parse_nlq  # noqa: E402
from training.nlq_writer import NLQFileBuilder  # noqa: E402
from training.submission import Prediction, load_submission, write_submission  # noqa: E402


def _timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_metrics(rng: np.random.Generator) -> None:
    for n in (4554, 50_000):
        gs = rng.uniform(0, 470, n)
        gt = np.stack([gs, gs + rng.uniform(0.5, 10, n)], axis=1)
        ps = rng.uniform(0, 470, (n, 5))
        pred = np.stack([ps, ps + rng.uniform(1, 20, (n, 5))], axis=2)
        seconds, _ = _timed(lambda: score_windows(pred, gt, ["t"] * n))  # noqa: B023 (called at once)
        print(f"score_windows, {n} queries x 5 windows: {seconds * 1e3:.1f} ms")


def bench_evaluate_files(rng: np.random.Generator, tmp: Path) -> None:
    b = NLQFileBuilder()
    preds = []
    for c in range(415):
        b.add_clip(f"c{c}", f"v{c // 2}", 0, 480)
        for q in range(11):
            s = float(rng.uniform(0, 470))
            key = b.add_query(f"c{c}", f"query {q}", s, s + 4.0, template="Objects: Where is object X?")
            preds.append(Prediction.for_query(key, [(s + d, s + d + 5) for d in rng.uniform(-10, 10, 5)]))
    ann, sub = b.write(tmp / "ann.json"), write_submission(tmp / "pred.json", preds)
    seconds, scores = _timed(lambda: evaluate(load_nlq(ann), load_submission(sub)))
    print(f"evaluate from files, {scores.num_queries} queries: {seconds * 1e3:.1f} ms")


def bench_naq(rng: np.random.Generator, tmp: Path, rows: int) -> None:
    videos = 2000
    b = NLQFileBuilder()
    for v in range(videos):
        b.add_clip(f"c{v}", f"v{v}", 100.0, 580.0)
    path = tmp / "egoclip.csv"
    with open(path, "w") as fh:
        fh.write(
            "\tclip_idx\tvideo_uid\tvideo_dur\tnarration_source\tnarration_ind\tnarration_time\t"
            "clip_start\tclip_end\tclip_text\ttag_verb\ttag_noun\n"
        )
        vids = rng.integers(0, videos * 2, rows)  # half the videos have no training clip
        times = rng.uniform(0, 1200, rows)
        for i in range(rows):
            t = times[i]
            fh.write(
                f"{i}\t{i}\tv{vids[i]}\t1200.0\tnarration_pass_1\t{i}\t{t:.3f}\t{t - 0.4:.3f}\t"
                f"{t + 0.4:.3f}\t#C C picks object {i % 997} from the table\t[1]\t[2]\n"
            )
    read_s, nf = _timed(lambda: load_narrations(path), repeat=1)
    nlq = b.to_dict()
    build_s, (data, report) = _timed(lambda: build_naq([("nlq.json", nlq)], nf), repeat=1)
    write_s, _ = _timed(lambda: json.dumps(data), repeat=1)
    total = read_s + build_s + write_s
    print(
        f"NaQ on {rows} EgoClip rows: read {read_s:.2f} s, build {build_s:.2f} s, "
        f"serialise {write_s:.2f} s ({report.kept} kept); ~{total * 3.8e6 / rows:.0f} s extrapolated to "
        "EgoClip's 3.8 M rows"
    )
    parse_s, _ = _timed(lambda: parse_nlq(data), repeat=1)
    print(f"parse_nlq of the result ({report.queries_written} narration queries): {parse_s:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="generated EgoClip rows for the NaQ bench")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    bench_metrics(rng)
    with tempfile.TemporaryDirectory() as tmp:
        bench_evaluate_files(rng, Path(tmp))
        bench_naq(rng, Path(tmp), args.rows)


if __name__ == "__main__":
    main()
