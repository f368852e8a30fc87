"""What only a GPU can show: fp16 encoding agrees with fp32, a training step runs on CUDA, faiss searches on the
GPU. Every test here is marked ``gpu`` and skips cleanly without CUDA (``conftest.py``); ``bench/gpu_check.sh``
runs them on a GPU machine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from localizer_fixtures import TINY_CONFIGS, random_batch

from models.clip_encoder import ClipEncoder
from models.localizer import SpanTargets
from models.registry import build_localizer

pytestmark = pytest.mark.gpu


def test_fp16_encoding_on_the_gpu_matches_fp32_on_the_cpu(tiny_spec):
    cpu = ClipEncoder.load(tiny_spec, device="cpu")
    gpu = ClipEncoder.load(tiny_spec, device="cuda")
    assert gpu.dtype == torch.float16 and cpu.dtype == torch.float32
    frames = np.random.default_rng(0).integers(0, 256, (8, cpu.image_size, cpu.image_size, 3), dtype=np.uint8)
    a, b = (e.encode_frames(frames).astype(np.float32) for e in (cpu, gpu))
    assert np.min(np.sum(a * b, axis=1)) > 0.999  # unit vectors: cosine of each frame's two embeddings
    texts = ["where did I put my keys", "a mug on the table"]
    ta, tb = (np.asarray(e.encode_text(texts), np.float32) for e in (cpu, gpu))
    assert np.min(np.sum(ta * tb, axis=1)) > 0.999


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_a_training_step_on_cuda_lowers_the_loss(name):
    torch.manual_seed(0)
    model = build_localizer(name, TINY_CONFIGS[name]).cuda().train()
    batch = [t.cuda() if t is not None else None for t in random_batch(name)]
    targets = SpanTargets(torch.tensor([1, 4, 9], device="cuda"), torch.tensor([3, 8, 9], device="cuda"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model.loss(model(*batch), targets)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_faiss_on_the_gpu_finds_what_the_cpu_finds():
    faiss = pytest.importorskip("faiss")
    if not hasattr(faiss, "StandardGpuResources"):
        pytest.skip("this faiss build has no GPU support (faiss-cpu)")
    rng = np.random.default_rng(0)
    base = rng.standard_normal((20_000, 64)).astype(np.float32)
    queries = rng.standard_normal((16, 64)).astype(np.float32)
    cpu = faiss.IndexFlatIP(64)
    cpu.add(base)
    gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, cpu)
    _, i_cpu = cpu.search(queries, 10)
    _, i_gpu = gpu.search(queries, 10)
    assert np.mean(i_cpu == i_gpu) > 0.99


def test_a_segment_index_searches_on_the_gpu_and_finds_what_the_cpu_finds():
    """A 1,000-hour library's index (``Seg16,SQfp16``) has no GPU form in faiss; the library searches its float16
    codes with a GPU flat index instead (``bench/gpu_faiss.py`` times it at 1,000 hours)."""
    faiss = pytest.importorskip("faiss")
    if not hasattr(faiss, "StandardGpuResources"):
        pytest.skip("this faiss build has no GPU support (faiss-cpu)")
    from indexing.vectors import FrameIndex

    rng = np.random.default_rng(0)
    index = FrameIndex.new(64, "Seg16,SQfp16")
    for rowid in range(1, 21):
        x = rng.standard_normal((1600, 64)).astype(np.float32)
        index.add(rowid, x / np.linalg.norm(x, axis=1, keepdims=True))
    queries = rng.standard_normal((16, 64)).astype(np.float32)
    s_cpu, i_cpu = index.search(queries, 10)
    s_gpu, i_gpu = index.search(queries, 10, use_gpu=True)
    assert index.on_gpu
    assert np.mean(i_cpu == i_gpu) > 0.95 and np.allclose(s_cpu, s_gpu, atol=2e-3)
    one_cpu = index.search(queries[:1], 10)[1]
    one_gpu = index.search(queries[:1], 10, use_gpu=True)[1]
    assert np.mean(one_cpu == one_gpu) > 0.9


def test_video_decodes_on_the_gpus_video_decoder(tmp_path):
    """NVDEC through FFmpeg (PyAV's build has CUDA devices): the same pictures as software decoding."""
    from media import write_video

    from indexing.config import DecodeConfig
    from indexing.decode import decode_frames
    from indexing.probe import probe

    path = write_video(tmp_path / "walk.mp4", seconds=4.0, fps=30.0, width=640, height=360, seed=7)
    info = probe(path)
    grid = info.grid(1.875)
    software, _ = decode_frames(path, info, grid, 224, DecodeConfig(hardware="none"))
    frames, report = decode_frames(path, info, grid, 224, DecodeConfig(hardware="cuda"))
    assert report.hardware == "cuda" and report.damaged == 0
    assert np.abs(frames.astype(int) - software).max() <= 3
