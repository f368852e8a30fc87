import numpy as np
import pytest

from models.clip_encoder import ClipEncoder, EncoderSpec, EncoderUnavailable


def test_frames_and_text_share_one_normalised_space(tiny_encoder):
    frames = np.random.default_rng(0).integers(0, 255, (4, 90, 160, 3), dtype=np.uint8)
    img = tiny_encoder.encode_frames(frames)
    txt = tiny_encoder.encode_text(["where did I put my keys?", "a mug"])
    assert img.shape == (4, tiny_encoder.dim) and img.dtype == np.float16
    assert txt.shape == (2, tiny_encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(img.astype(np.float32), axis=1), 1.0, atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)


def test_random_weights_are_reproducible_across_loads(tiny_spec, tiny_encoder):
    again = ClipEncoder.load(tiny_spec, device="cpu")
    np.testing.assert_allclose(again.encode_text(["keys"]), tiny_encoder.encode_text(["keys"]), atol=1e-6)
    assert again.key == tiny_encoder.key == "egorecall-tiny/random-seed0"


def test_token_features_mask_padding(tiny_encoder):
    feats, mask = tiny_encoder.encode_text_tokens(["where did I put my keys?", "mug"])
    assert feats.shape[:2] == mask.shape and feats.shape[2] == tiny_encoder.dim
    assert mask[0].all() and mask[1].sum() == 3  # start, "mug", end


def test_missing_pretrained_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("EGORECALL_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderUnavailable, match=str(tmp_path / "ViT-B-16" / "openai")):
        ClipEncoder.load(EncoderSpec("ViT-B-16", "openai"), device="cpu")


def test_unknown_model_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(EncoderUnavailable, match="unknown open_clip model"):
        ClipEncoder.load(EncoderSpec("no-such-model", "none"))
    with pytest.raises(EncoderUnavailable, match="not found"):
        ClipEncoder.load(EncoderSpec("egorecall-tiny", str(tmp_path / "missing.safetensors")))


@pytest.mark.parametrize("model", ["egorecall-tiny", "egorecall-small"])
def test_text_without_padding_matches_the_full_context(model):
    """Cutting the padding after the last end-of-text token must not change any embedding or token feature."""
    import torch

    enc = ClipEncoder.load(EncoderSpec(model, "none"), device="cpu")
    texts = ["keys", "puts the keys in the drawer", "what did i pour into the bowl before lunch", "x"]
    tokens = enc._tokens(texts)
    captured = []
    ln = enc.model.ln_final
    handle = ln.register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.inference_mode():
        full = torch.nn.functional.normalize(enc.model.encode_text(tokens).float(), dim=-1).numpy()
    handle.remove()
    fast = enc.encode_text(texts)
    np.testing.assert_allclose(fast, full, atol=1e-5)

    feats, mask = enc.encode_text_tokens(texts)
    full_tokens = captured[0]
    full_tokens = (full_tokens @ enc.model.text_projection).float().numpy()
    n = feats.shape[1]
    assert n == int((tokens != 0).sum(1).max()) < tokens.shape[1]
    np.testing.assert_allclose(feats[mask], full_tokens[:, :n][mask], atol=1e-4)


def test_first_use_downloads_the_weights_then_finds_them_on_the_machine(tmp_path, monkeypatch):
    """A pretrained tag served from a local file URL: downloaded once (temp file, renamed), then found locally;
    offline, the same missing tag is one immediate message."""
    import open_clip
    from safetensors.torch import save_file

    reference = ClipEncoder.load(EncoderSpec("egorecall-tiny", "none"), device="cpu")
    served = tmp_path / "served" / "tiny.safetensors"
    served.parent.mkdir()
    save_file({k: v.contiguous() for k, v in reference.model.state_dict().items()}, str(served))
    real = open_clip.get_pretrained_cfg

    def cfg(model, tag):
        return {"url": served.as_uri()} if (model, tag) == ("egorecall-tiny", "served") else real(model, tag)

    monkeypatch.setattr(open_clip, "get_pretrained_cfg", cfg)
    monkeypatch.setenv("EGORECALL_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("EGORECALL_OFFLINE", raising=False)
    downloaded = ClipEncoder.load(EncoderSpec("egorecall-tiny", "served"), device="cpu")
    local = tmp_path / "weights" / "egorecall-tiny" / "served" / "open_clip_model.safetensors"
    assert local.is_file() and not list(local.parent.glob(".*part*"))  # no temporary file left behind
    texts = ["where did I put my keys", "mug"]
    np.testing.assert_allclose(downloaded.encode_text(texts), reference.encode_text(texts), atol=1e-6)
    served.unlink()  # the second load must not need the network
    assert ClipEncoder.load(EncoderSpec("egorecall-tiny", "served"), device="cpu").key == "egorecall-tiny/served"

    monkeypatch.setenv("EGORECALL_WEIGHTS", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("EGORECALL_OFFLINE", "1")
    with pytest.raises(EncoderUnavailable, match="downloads are off"):
        ClipEncoder.load(EncoderSpec("egorecall-tiny", "served"), device="cpu")
    monkeypatch.delenv("EGORECALL_OFFLINE")
    with pytest.raises(EncoderUnavailable, match="downloading the pretrained weights .* failed"):
        ClipEncoder.load(EncoderSpec("egorecall-tiny", "served"), device="cpu")  # the URL is gone now


@pytest.mark.parametrize("runtime", ["int8", "openvino"])
def test_a_faster_image_tower_is_its_own_encoder_and_stays_close_to_float(tmp_path, tiny_encoder, runtime):
    """``+int8`` (torch dynamic quantisation) and ``+openvino`` (the tower compiled by OpenVINO, for real)."""
    from media import write_video

    from indexing.errors import EncoderMismatch
    from indexing.library import Library

    spec = EncoderSpec("egorecall-tiny", "none", runtime)
    assert spec.key == f"{tiny_encoder.key}+{runtime}"
    fast = ClipEncoder.load(spec, device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    a = tiny_encoder.encode_frames(frames).astype(np.float32)
    b = fast.encode_frames(frames).astype(np.float32)
    assert np.min(np.sum(a * b, axis=1)) > 0.99  # the same pictures, nearly the same unit vectors
    np.testing.assert_allclose(fast.encode_text(["keys"]), tiny_encoder.encode_text(["keys"]), atol=1e-6)

    video = write_video(tmp_path / "walk.mp4", seconds=2.0)
    library = Library.open(tmp_path / "lib")
    try:
        library.add(video, fast)
        assert library.encoder_spec == spec  # reopened libraries load the same runtime's encoder again
        with pytest.raises(EncoderMismatch):
            library.add(write_video(tmp_path / "other.mp4", seconds=2.0, seed=4), tiny_encoder)
    finally:
        library.close()


def test_faster_towers_refuse_what_they_cannot_do(monkeypatch):
    import builtins

    with pytest.raises(EncoderUnavailable, match="quantisation"):
        EncoderSpec("egorecall-tiny", "none", "int4")
    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(EncoderUnavailable, match=r'pip install -e "\.\[openvino\]"'):
        ClipEncoder.load(EncoderSpec("egorecall-tiny", "none", "openvino"), device="cpu")
