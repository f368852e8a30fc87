"""Tiny localizer configs and a synthetic "find the marked moment" task, shared by the localizer tests."""

from __future__ import annotations

import contextlib

import torch

VIDEO_DIM, QUERY_DIM, AUX_DIM = 16, 12, 6

TINY_CONFIGS = {
    "vslnet": {
        "video_dim": VIDEO_DIM,
        "query_dim": QUERY_DIM,
        "dim": 32,
        "num_heads": 4,
        "max_positions": 64,
        "dropout": 0.0,
    },
    "reler": {
        "video_dim": VIDEO_DIM,
        "query_dim": QUERY_DIM,
        "aux_video_dim": AUX_DIM,
        "dim": 32,
        "num_heads": 4,
        "num_co_layers": 1,
        "ffn_dim": 64,
        "dropout": 0.0,
        "max_positions": 64,
        "contrastive_dim": 16,
        "train_scales": [2, 3, 4],
        "eval_scales": [2, 4],
    },
}


def random_batch(name: str, batch: int = 3, length: int = 20, tokens: int = 5, seed: int = 0):
    """Random inputs with ragged padding in both video and query."""
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, length, VIDEO_DIM, generator=g)
    video_mask = torch.ones(batch, length, dtype=torch.bool)
    video_mask[1, length - 6 :] = False
    query = torch.randn(batch, tokens, QUERY_DIM, generator=g)
    query_mask = torch.ones(batch, tokens, dtype=torch.bool)
    query_mask[-1, tokens - 2 :] = False
    aux = torch.randn(batch, length, AUX_DIM, generator=g) if name == "reler" else None
    return video, video_mask, query, query_mask, aux


def marked_moments(num: int = 8, length: int = 24, seed: int = 0):
    """``num`` clips, each holding two moments marked by distinct feature vectors (A and B); each query
    names one of them through its tokens, and its answer is that moment's bins."""
    g = torch.Generator().manual_seed(seed)
    markers = 3.0 * torch.randn(2, VIDEO_DIM, generator=g)
    names = torch.randn(2, QUERY_DIM, generator=g)
    video = 0.3 * torch.randn(num, length, VIDEO_DIM, generator=g)
    aux = 0.3 * torch.randn(num, length, AUX_DIM, generator=g)
    query = 0.1 * torch.randn(num, 4, QUERY_DIM, generator=g)
    starts, ends = [], []
    for i in range(num):
        a_start = int(torch.randint(0, length // 2 - 4, (1,), generator=g))
        b_start = int(torch.randint(length // 2, length - 4, (1,), generator=g))
        a_len, b_len = 2 + i % 3, 1 + (i + 1) % 3
        video[i, a_start : a_start + a_len] += markers[0]
        video[i, b_start : b_start + b_len] += markers[1]
        which = i % 2
        query[i, 1:3] += names[which]
        s, n = (a_start, a_len) if which == 0 else (b_start, b_len)
        starts.append(s)
        ends.append(s + n - 1)
    video_mask = torch.ones(num, length, dtype=torch.bool)
    query_mask = torch.ones(num, 4, dtype=torch.bool)
    return video, video_mask, query, query_mask, aux, torch.tensor(starts), torch.tensor(ends)


@contextlib.contextmanager
def one_thread():
    """Tiny models are many small ops: one thread beats two, which wait on each other at every op when the
    (shared, 2-core) machine is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
