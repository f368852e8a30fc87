"""VSLNet really learns to localise on rendered video, and narrations help when NLQ queries are few (NaQ).

The world, encoder and library are the demo's (``DemoConfig()``: 20 synthetic videos, ``egorecall-small``
pretrained on their narrations, 12 training / 8 held-out videos). NaQ's few-shot setting: VSLNet sees the NLQ
queries of only a quarter of the training clips. Two runs with the same budget (model, steps, batch,
schedule, seed) differ only in their data:

* NLQ + NaQ -- those NLQ queries plus every narration of the training videos (the demo's training stage);
* NLQ only -- those NLQ queries alone (stage ``nlq``).

Both are evaluated on the 120 queries of the held-out videos through the app's inference path, and their
best evaluation is compared. Chance is the evaluator of ``training/curve_eval.py`` on random windows of the
answers' median length (as in the pretraining proof).

Calibration (2-core development box, seed 1, 300 steps of 32, best of the evaluations at steps 100/200/300),
R@1@0.3 / R@5@0.3 / R@1@0.5: NLQ + NaQ 15.8 / 35.0 / 8.3; NLQ only 8.3 / 25.8 / 3.3 (it overfits after step
100); chance 4.3 / 23.7 / 3.2. An earlier run of the same recipe gave 15.8 / 35.8 and 11.7 / 21.7; a CI run
on a busy machine 15.0 / 30.0 / 5.0 and 9.2 / 24.2 / 5.8 (the runs are not bit-identical). With every NLQ
query the same recipe reaches 19.2 / 38.3 (bench/README.md, "Demo"). On one machine the runs are
bit-identical (2026-12-04: two runs with different global RNG states and hash seeds gave the same checkpoint
and 15.8 / 40.8 / 9.2 against 10.8 / 31.7 / 5.8); across machines float kernels differ and the gap of a single
metric varied from +0.8 to +14 points of R@5@0.3, while the summed gain of the three stayed >= 10.8 where
all three were recorded. Since runs read their texts as the question grammar does (2026-12-08, AMD box): 21.7 /
49.2 / 13.3 against 10.8 / 29.2 / 6.7. The test takes about
7 minutes here (world 13 s, pretraining ~100 s, indexing 25 s, two trainings ~150 s each); smaller worlds did
not learn reliably (14 videos of 100 s: R@1@0.3 9.3 vs chance 6.7), and the random ``egorecall-tiny``
encoder stays at chance.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.demo import DemoConfig, demo_train_config, run_demo
from app.service import EgoRecall
from app.settings import Settings
from training.curve_eval import answer_length_proposals, evaluate_curves, random_curve
from training.features import LibraryClipFeatures
from training.nlq import load_nlq

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

FEW_SHOT = 0.25


def _best_metrics(result) -> dict[str, float]:
    metrics = (result.best or {}).get("metrics") or result.final_metrics
    return {k: float(v) for k, v in metrics.items()}


def test_naq_beats_nlq_only_when_nlq_queries_are_few(tmp_path):
    service = EgoRecall(Settings(library=tmp_path / "library", device="cpu"))
    config = DemoConfig(nlq_fraction=FEW_SHOT)
    report = run_demo(service, config)  # world, pretraining, index, NaQ, VSLNet on few NLQ + all narrations
    naq = report.train_metrics

    baseline = demo_train_config(
        service, config, name="few-shot-nlq-only", stage="nlq", train=[report.world / "nlq_train.json"]
    )
    nlq = _best_metrics(service.train(baseline))

    val = load_nlq(report.world / "nlq_val.json")
    features = LibraryClipFeatures(service.library)
    runs = [evaluate_curves(val, features, random_curve(s), proposals=answer_length_proposals(val)) for s in range(5)]
    chance = {m: float(np.mean([r.recall[m] for r in runs])) for m in runs[0].recall}
    print(
        f"\nfew-shot ({FEW_SHOT:.0%} of NLQ clips) on {runs[0].num_queries} held-out queries, R@1@0.3 / R@5@0.3 / "
        f"R@1@0.5: NLQ+NaQ {naq['R@1@0.3']:.1f} / {naq['R@5@0.3']:.1f} / {naq['R@1@0.5']:.1f}, NLQ only "
        f"{nlq['R@1@0.3']:.1f} / {nlq['R@5@0.3']:.1f} / {nlq['R@1@0.5']:.1f}, chance {chance['R1@0.3']:.1f} / "
        f"{chance['R5@0.3']:.1f} / {chance['R1@0.5']:.1f}; stages "
        + ", ".join(f"{k} {v:.0f} s" for k, v in report.stage_seconds.items())
    )
    assert naq["num_queries"] == nlq["num_queries"] == runs[0].num_queries >= 100
    # far above chance
    assert naq["R@1@0.3"] >= 2.5 * chance["R1@0.3"]
    # R@1@0.5 alone is a handful of the 120 queries (5.0-8.3 across runs, chance 3.2): the mean R@1 of both
    # thresholds carries the claim with a margin.
    assert naq["R@1@0.3"] + naq["R@1@0.5"] >= 2.0 * (chance["R1@0.3"] + chance["R1@0.5"])
    # NaQ's effect: narrations make up for missing NLQ queries. One metric's gap moves by several points from
    # one CPU to another (see the module's docstring), so the claim is carried by the three together, with a
    # margin, and NaQ must not lose the headline R@5@0.3.
    gain = sum(naq[m] - nlq[m] for m in ("R@1@0.3", "R@5@0.3", "R@1@0.5"))
    assert gain >= 6.0, gain
    # ...and NaQ must not lose the headline R@5@0.3 beyond noise: two queries' worth (one query is 100/120
    # points), not zero -- a zero margin failed once on a fresh clone on one query's flip.
    one_query = 100.0 / naq["num_queries"]
    assert naq["R@5@0.3"] >= nlq["R@5@0.3"] - 2 * one_query
