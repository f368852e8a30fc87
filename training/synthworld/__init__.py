"""A synthetic first-person world: seeded videos of a day in a small house, with Ego4D-format narrations and
NLQ annotations whose answer windows are exact.

It exists so that EgoRecall's whole pipeline (index -> NaQ -> train -> evaluate, the offline demo, the
benchmarks) can run and be checked for real learning without Ego4D's data. ``python -m app synth`` wraps
:func:`generate_world`.

Modules: ``catalog`` (the house), ``script`` (the event log), ``render`` (numpy drawing of frames),
``language`` (narrations), ``queries`` (NLQ questions), ``ego4d_files`` (the JSON formats), ``plan`` (every
video decided before drawing), ``generate`` (the world on disk) and ``diagnostics`` (can an encoder tell the
objects apart?).
"""

from training.synthworld.generate import WorldSummary, generate_world
from training.synthworld.plan import SynthConfig, SynthWorldError, VideoPlan, plan_world_video

__all__ = ["SynthConfig", "SynthWorldError", "VideoPlan", "WorldSummary", "generate_world", "plan_world_video"]
