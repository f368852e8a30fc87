"""Data sets, NaQ, the training loop and the metrics of EgoRecall's trained modes.

``training.run(config, progress=..., stop=...) -> TrainResult`` trains one stage (see :mod:`training.loop`);
``training.load_config(path, overrides)`` reads a config (see :mod:`training.config`). Both are imported
lazily so that reading NLQ files does not pull in the training machinery.
"""

from __future__ import annotations

_LAZY = {
    "run": ("training.loop", "run"),
    "TrainResult": ("training.loop", "TrainResult"),
    "TrainConfig": ("training.config", "TrainConfig"),
    "load_config": ("training.config", "load_config"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        module, attr = _LAZY[name]
        return getattr(import_module(module), attr)
    raise AttributeError(f"module 'training' has no attribute '{name}'")
