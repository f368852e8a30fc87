import numpy as np
import pytest

from models.clip_encoder import EncoderUnavailable
from models.text_readings import UnknownReading, text_reading
from models.text_tokens import TextEncoderSpec, load_text_encoder


def test_open_clip_tokens_normalise_narrations_like_questions(tiny_spec, tiny_encoder):
    enc = load_text_encoder(TextEncoderSpec.from_clip(tiny_spec), device="cpu", encoder=tiny_encoder)
    assert enc.dim == tiny_encoder.dim and enc.key == f"open_clip:{tiny_encoder.key}"
    feats, mask = enc.encode(["#C C puts the keys on the table.", "puts the keys on the table"])
    np.testing.assert_allclose(feats[0][mask[0]], feats[1][mask[1]], atol=1e-5)
    assert load_text_encoder(TextEncoderSpec.from_clip(tiny_spec), device="cpu") is enc


def test_the_question_reading_encodes_typed_forms_as_the_annotated_one(tiny_spec, tiny_encoder):
    """Read as the grammar reads (new runs' default), what people type and what annotators wrote give the same
    tokens; the plain reading (checkpoints made before readings) tells them apart, under the key it always had."""
    question = load_text_encoder(TextEncoderSpec.from_clip(tiny_spec, "question"), device="cpu", encoder=tiny_encoder)
    plain = load_text_encoder(TextEncoderSpec.from_clip(tiny_spec), device="cpu", encoder=tiny_encoder)
    assert question.key == plain.key + "+question" and plain.key == f"open_clip:{tiny_encoder.key}"
    typed = ["Can you tell me where's my keys??", "where did i put the keys the first time", "Where is my keys?"]
    for enc, same in ((question, True), (plain, False)):
        feats, mask = enc.encode([typed[0], typed[2]])
        assert bool(mask[0].sum() == mask[1].sum() and np.allclose(feats[0][mask[0]], feats[1][mask[1]])) == same
    read = text_reading("question")
    assert read(typed[1]) == "where did i put the keys" and read("can you tell me?") == "can you tell me"


def test_spec_round_trips_through_json_dicts():
    spec = TextEncoderSpec(kind="hf", model="/models/bert", pretrained="", reading="plain")
    assert TextEncoderSpec.from_dict(spec.to_dict()) == spec
    assert TextEncoderSpec.from_dict({"model": "ViT-B-16"}).reading == "plain"  # written before readings
    assert TextEncoderSpec().reading == "plain"  # a spec that names none was made before readings existed
    from models.text_readings import DEFAULT_READING

    assert DEFAULT_READING == "question"  # what new runs train with (bench/README.md)


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
    with pytest.raises(UnknownReading, match="known: plain, question"):
        load_text_encoder(TextEncoderSpec(kind="hf", model=str(tmp_path), reading="shouting"), device="cpu")
