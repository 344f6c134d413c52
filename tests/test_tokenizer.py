import numpy as np
import pytest

from reprotext.config import TokenizeConfig
from reprotext.data import normalize_text
from reprotext.errors import ArtifactError
from reprotext.tokenizer import CLS, MASK, PAD, UNK, TokenArray, Tokenizer, chunk_text, train_tokenizer

EDGE = ["", "a", "😀", "日本語のテキスト", "Привет, мир!", "שלום עולם", "mixed 混合 текст 🎉 done",
        "word " * 3000]


@pytest.mark.parametrize("text", EDGE, ids=["empty", "one-char", "emoji", "cjk", "cyrillic", "rtl", "mixed", "long"])
def test_decode_encode_round_trip(tokenizer, text):
    expected = normalize_text(text)
    assert tokenizer.decode(tokenizer.encode([expected])[0]) == expected


def test_special_ids_are_stable_across_retrains(corpus, tmp_path):
    texts, _ = corpus
    a = train_tokenizer(texts, TokenizeConfig(vocab_size=350), tmp_path / "a")
    b = train_tokenizer(texts[:50], TokenizeConfig(vocab_size=300, model_type="unigram"), tmp_path / "b")
    for tok in (a, b):
        assert tok.sp.pad_id() == PAD and tok.sp.unk_id() == UNK
        assert tok.sp.piece_to_id("[CLS]") == CLS and tok.sp.piece_to_id("[MASK]") == MASK


def test_same_seed_gives_the_same_model(corpus, tmp_path):
    texts, _ = corpus
    a = train_tokenizer(texts, TokenizeConfig(vocab_size=350), tmp_path / "a")
    b = train_tokenizer(texts, TokenizeConfig(vocab_size=350), tmp_path / "b")
    assert a.sha256 == b.sha256


def test_chunks_keep_every_byte_of_long_documents():
    text = " ".join(f"w{i}" for i in range(5000)) + " " + "x" * 300
    chunks = list(chunk_text(text, 256))
    assert all(len(c.encode()) <= 256 for c in chunks)
    assert "".join(chunks).replace(" ", "") == text.replace(" ", "")


def test_long_document_is_not_dropped_from_training(tmp_path):
    # One 20 kB line holding a word found nowhere else: sentencepiece would skip
    # the whole line; chunking must keep the word in the vocabulary.
    long_doc = " ".join(["zyxwvut"] * 2500 + ["common words here"] * 10)
    tok = train_tokenizer([long_doc, "common words here"] * 3, TokenizeConfig(vocab_size=300, max_sentence_length=512),
                          tmp_path)
    assert tok.sp.piece_to_id("▁zyxwvut") != UNK


def test_token_array_round_trip_and_tokenizer_check(tmp_path):
    arr = TokenArray.from_lists([[5, 6, 7], [], [8]])
    assert arr.ids.dtype == np.int32 and arr.offsets.tolist() == [0, 3, 3, 4]
    arr.save(tmp_path / "t", "abc")
    back = TokenArray.load(tmp_path / "t", "abc")
    assert [back[i].tolist() for i in range(3)] == [[5, 6, 7], [], [8]]
    assert isinstance(back.ids, np.memmap)
    with pytest.raises(ArtifactError, match="made by tokenizer abc"):
        TokenArray.load(tmp_path / "t", "def")


def test_corrupted_model_is_a_clear_error(tmp_path):
    (tmp_path / "spm.model").write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="not a valid sentencepiece model"):
        Tokenizer.load(tmp_path)


def test_vocab_too_small_for_the_fixed_pieces_is_a_config_error():
    from reprotext.config import parse_section
    from reprotext.errors import ConfigError

    with pytest.raises(ConfigError, match="vocab_size must exceed the 262 fixed pieces"):
        parse_section("tokenize", {"vocab_size": 100})
    assert parse_section("tokenize", {"vocab_size": 100, "byte_fallback": False}).vocab_size == 100
