import numpy as np
import pytest

from models.clip_encoder import EncoderUnavailable
from models.text_tokens import TextEncoderSpec, load_text_encoder


def test_open_clip_tokens_normalise_narrations_like_questions(tiny_spec, tiny_encoder):
    enc = load_text_encoder(TextEncoderSpec.from_clip(tiny_spec), device="cpu", encoder=tiny_encoder)
    assert enc.dim == tiny_encoder.dim and enc.key.endswith(tiny_encoder.key)
    feats, mask = enc.encode(["#C C puts the keys on the table.", "puts the keys on the table"])
    np.testing.assert_allclose(feats[0][mask[0]], feats[1][mask[1]], atol=1e-5)
    assert load_text_encoder(TextEncoderSpec.from_clip(tiny_spec), device="cpu") is enc


def test_spec_round_trips_through_json_dicts():
    spec = TextEncoderSpec(kind="hf", model="/models/bert", pretrained="")
    assert TextEncoderSpec.from_dict(spec.to_dict()) == spec


def test_local_bert_folder(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "where", "did", "i", "put", "the", "keys"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    BertModel(
        BertConfig(
            vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
        )
    ).save_pretrained(tmp_path)
    enc = load_text_encoder(TextEncoderSpec(kind="hf", model=str(tmp_path)), device="cpu")
    feats, mask = enc.encode(["Where did I put the keys?", "keys"])
    assert feats.shape == (2, mask.shape[1], 32) and mask[0].sum() == 8 and mask[1].sum() == 3


def test_missing_or_unknown_encoders_are_clear(tmp_path):
    with pytest.raises(EncoderUnavailable, match="no transformers model"):
        load_text_encoder(TextEncoderSpec(kind="hf", model=str(tmp_path / "nothing")), device="cpu")
    with pytest.raises(EncoderUnavailable, match="unknown text encoder kind"):
        load_text_encoder(TextEncoderSpec(kind="word2vec"), device="cpu")
