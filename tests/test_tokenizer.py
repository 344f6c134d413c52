import io

import numpy as np
import pytest
import sentencepiece as spm

from reprotext.config import TokenizeConfig, parse_section
from reprotext.data import normalize_text
from reprotext.errors import ArtifactError, ConfigError
from reprotext.io import read_json, write_json
from reprotext.tokenizer import (BOS, CLS, EOS, MASK, PAD, UNK, TokenArray, Tokenizer, chunk_text, sample_chunks,
                                 train_tokenizer)

EDGE = {
    "empty": "",
    "one-char": "a",
    "emoji": "😀",
    "emoji-zwj": "family 👩‍👩‍👧 and flag 🇺🇦",
    "cjk": "日本語のテキスト",
    "cyrillic": "Привет, мир!",
    "rtl": "שלום עולם",
    "mixed": "mixed 混合 текст 🎉 done",
    "unseen-script": "ꙮ ᚠᚢᚦ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",  # in no training text: byte fallback must carry it
    "combining": "Cafe\u0301 nai\u0308ve",  # NFC folds the marks into é and ï
    "whitespace": "  tabs\tand\nnewlines  ",
    "long": "word " * 3000,
    "long-cjk": "日本語" * 3000,
}


@pytest.mark.parametrize("text", EDGE.values(), ids=EDGE.keys())
def test_decode_encode_round_trip(tokenizer, text):
    expected = normalize_text(text)
    assert tokenizer.decode(tokenizer.encode([expected])[0]) == expected


def test_unseen_characters_become_bytes_not_unk(tokenizer):
    ids = tokenizer.encode([EDGE["unseen-script"]])[0]
    assert UNK not in ids and any(tokenizer.sp.is_byte(i) for i in ids)


def test_special_ids_are_stable_across_retrains(corpus, tmp_path):
    texts, _ = corpus
    a = train_tokenizer(texts, TokenizeConfig(vocab_size=350), tmp_path / "a")
    b = train_tokenizer(texts[:50], TokenizeConfig(vocab_size=300, model_type="unigram"), tmp_path / "b")
    c = train_tokenizer(texts[::-1], TokenizeConfig(vocab_size=120, byte_fallback=False,
                                                    extra_symbols=("[SEP]", "<url>")), tmp_path / "c")
    for tok in (a, b, c):
        assert tok.sp.pad_id() == PAD and tok.sp.unk_id() == UNK
        assert tok.sp.bos_id() == BOS and tok.sp.eos_id() == EOS
        assert tok.sp.piece_to_id("[CLS]") == CLS and tok.sp.piece_to_id("[MASK]") == MASK
    assert c.sp.piece_to_id("[SEP]") == 6 and c.sp.piece_to_id("<url>") == 7
    assert c.encode(["go [SEP] on"])[0].count(6) == 1  # an extra symbol is never split


def test_model_with_other_special_ids_is_refused(corpus, tmp_path):
    texts, _ = corpus
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model, vocab_size=60, minloglevel=2)
    (tmp_path / "spm.model").write_bytes(model.getvalue())  # sentencepiece's defaults: unk=0, no pad
    with pytest.raises(ArtifactError, match="special token ids"):
        Tokenizer.load(tmp_path)


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
    assert read_json(tmp_path / "meta.json")["training"]["long_documents"] == 3


def test_sample_keeps_everything_in_order_when_it_fits():
    texts = ["a b", "c " * 40, "", "d"]
    sample = sample_chunks(texts, 64, size=100, seed=0)
    assert sample.chunks == [c for t in texts for c in chunk_text(t, 64)]
    assert (sample.documents, sample.long_documents, sample.chunks_seen) == (4, 1, len(sample.chunks))


def test_sample_is_seeded_uniform_and_bounded():
    texts = [f"doc{i}" for i in range(1000)]
    a, b, c = (sample_chunks(texts, 64, size=100, seed=s) for s in (1, 1, 2))
    assert len(a.chunks) == 100 and a.chunks_seen == 1000 and len(set(a.chunks)) == 100
    assert set(a.chunks) <= set(texts)
    assert a.chunks == b.chunks and a.chunks != c.chunks
    # Uniform, not the first 100: the sample reaches deep into the stream.
    assert max(int(t[3:]) for t in a.chunks) > 500


@pytest.mark.parametrize("batch_size", [1, 7, 10_000])
def test_encode_array_matches_sentencepiece(tokenizer, corpus, batch_size):
    texts = corpus[0][:40] + ["", "日本語のテキスト"]
    arr = tokenizer.encode_array(texts, threads=2, batch_size=batch_size)
    assert arr.ids.dtype == np.int32 and arr.offsets.dtype == np.int64
    assert [arr[i].tolist() for i in range(len(arr))] == tokenizer.sp.encode(texts, out_type=int)


def test_encode_array_of_nothing_is_empty(tokenizer):
    arr = tokenizer.encode_array([], threads=2)
    assert len(arr) == 0 and arr.ids.shape == (0,) and arr.offsets.tolist() == [0]


def test_token_array_round_trip_and_tokenizer_check(tmp_path):
    arr = TokenArray.from_lists([[5, 6, 7], [], [8]])
    assert arr.ids.dtype == np.int32 and arr.offsets.tolist() == [0, 3, 3, 4]
    arr.save(tmp_path / "t", "abc")
    back = TokenArray.load(tmp_path / "t", "abc")
    assert [back[i].tolist() for i in range(3)] == [[5, 6, 7], [], [8]]
    assert isinstance(back.ids, np.memmap)
    with pytest.raises(ArtifactError, match="made by tokenizer abc"):
        TokenArray.load(tmp_path / "t", "def")


def test_token_array_concat_shifts_offsets():
    parts = [TokenArray.from_lists([[1, 2], [3]]), TokenArray.from_lists([[]]), TokenArray.from_lists([[4, 5, 6]])]
    arr = TokenArray.concat(parts)
    assert [arr[i].tolist() for i in range(len(arr))] == [[1, 2], [3], [], [4, 5, 6]]
    assert arr.lengths().tolist() == [2, 1, 0, 3]


def test_token_store_of_another_format_is_refused(tmp_path):
    TokenArray.from_lists([[1]]).save(tmp_path, "abc")
    write_json(tmp_path / "meta.json", {**read_json(tmp_path / "meta.json"), "format_version": 0})
    with pytest.raises(ArtifactError, match="format 0"):
        TokenArray.load(tmp_path, "abc")


def test_corrupted_model_is_a_clear_error(tmp_path):
    (tmp_path / "spm.model").write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="not a valid sentencepiece model"):
        Tokenizer.load(tmp_path)


def test_vocab_too_small_for_the_fixed_pieces_is_a_config_error():
    with pytest.raises(ConfigError, match="vocab_size must exceed the 262 fixed pieces"):
        parse_section("tokenize", {"vocab_size": 100})
    with pytest.raises(ConfigError, match="exceed the 264 fixed pieces .* 2 extra symbols"):
        parse_section("tokenize", {"vocab_size": 264, "extra_symbols": ["[SEP]", "<url>"]})
    assert parse_section("tokenize", {"vocab_size": 100, "byte_fallback": False}).vocab_size == 100


@pytest.mark.parametrize("symbols, message", [(["[CLS]"], "already a special piece"),
                                              (["<x>", "<x>"], "listed twice"),
                                              (["two words"], "whitespace"), ([""], "empty")])
def test_bad_extra_symbols_are_config_errors(symbols, message):
    with pytest.raises(ConfigError, match=message):
        parse_section("tokenize", {"extra_symbols": symbols})
