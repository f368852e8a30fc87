"""VSLNet really learns to localise on rendered video: the demo's own run (``DemoConfig()``: a synthetic world
of 20 videos, ``egorecall-small`` pretrained on its narrations, VSLNet trained with NLQ + NaQ queries of the
12 training videos) answers the 8 held-out videos' questions far above chance.

Chance is the evaluator of ``training/curve_eval.py`` on random windows of the answers' median length (as in
the pretraining proof); the model's figure is the run's own validation (the app's inference path).

Calibration (2-core development box, one other job running, seed 1): val R@1@0.3 19.2 / R@5@0.3 38.3 on 120
queries vs chance 4.3 / 23.7; a 600-step run of the same recipe evaluated 17.5-20.8 at steps 200-600. The run
takes ~5 minutes here (world 13 s, pretraining 97 s, indexing 25 s, training 157 s) -- over the 3-minute
target for one test, but smaller worlds did not learn reliably: 14 videos of 100 s with 80 pretraining and
200 training steps reached R@1@0.3 9.3 vs chance 6.7 (54 queries), and the random ``egorecall-tiny`` encoder
stayed at chance (2.5-6.2 vs ~5).

NaQ vs NLQ-only in a few-shot setting is not asserted: on a world this small the difference is within the
noise of 120 validation queries (numbers in ``bench/README.md``, section "Demo").
"""

from __future__ import annotations

import numpy as np
import pytest

from app.demo import DemoConfig
from app.service import EgoRecall
from app.settings import Settings
from training.curve_eval import answer_length_proposals, evaluate_curves, random_curve
from training.features import LibraryClipFeatures
from training.nlq import load_nlq

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def test_demo_vslnet_localises_far_above_chance(tmp_path):
    service = EgoRecall(Settings(library=tmp_path / "library", device="cpu"))
    report = service.demo(DemoConfig(question="where did I put the keys?"))
    got = report.train_metrics

    val = load_nlq(report.world / "nlq_val.json")
    features = LibraryClipFeatures(service.library)
    runs = [evaluate_curves(val, features, random_curve(s), proposals=answer_length_proposals(val)) for s in range(5)]
    chance = {m: float(np.mean([r.recall[m] for r in runs])) for m in runs[0].recall}
    print(f"\nNLQ+NaQ: val R@1@0.3 {got['R@1@0.3']:.1f} (chance {chance['R1@0.3']:.1f}), R@5@0.3 "
          f"{got['R@5@0.3']:.1f} (chance {chance['R5@0.3']:.1f}), R@1@0.5 {got['R@1@0.5']:.1f} "
          f"(chance {chance['R1@0.5']:.1f}) on {runs[0].num_queries} queries; stages "
          + ", ".join(f"{k} {v:.0f} s" for k, v in report.stage_seconds.items()))
    assert got["num_queries"] == runs[0].num_queries >= 100
    assert got["R@1@0.3"] >= max(2.5 * chance["R1@0.3"], chance["R1@0.3"] + 8.0)
    assert got["R@1@0.5"] >= max(2.5 * chance["R1@0.5"], chance["R1@0.5"] + 5.0)
