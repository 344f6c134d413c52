import io
import logging
import sys

import numpy as np
import pytest
from gensim.models import Word2Vec
from scipy.stats import spearmanr

from reprotext import embeddings
from reprotext.config import EmbedConfig
from reprotext.embeddings import (PieceCorpus, nearest, probe, read_pairs, similarity, similarity_benchmarks,
                                  train_embeddings, word_ids, word_vector)
from reprotext.errors import ArtifactError, DataError
from reprotext.tokenizer import PAD, TokenArray

CFG = EmbedConfig(dim=16, epochs=3, min_count=1, workers=1, seed=3)


@pytest.fixture(scope="module")
def piece_corpus(corpus, tokenizer):
    texts, _ = corpus
    return PieceCorpus([tokenizer.encode_array(texts)], tokenizer.pieces())


@pytest.fixture(scope="module")
def result(piece_corpus, tokenizer):
    return train_embeddings(piece_corpus, CFG, progress=False)


def test_rows_align_with_tokenizer_ids(piece_corpus, result, tokenizer):
    assert result.vectors.shape == (tokenizer.vocab_size, 16)
    assert result.vectors.dtype == np.float32
    assert not result.vectors[PAD].any()
    # Every trained row is its own nearest neighbour: row i really is piece i's vector.
    seen = {int(i) for i in piece_corpus.arrays[0].ids}
    assert set(np.flatnonzero(result.trained).tolist()) == seen - {PAD}
    for row in sorted(seen):
        assert nearest(result.vectors, result.vectors[row], k=1) == [row]
    assert result.trained_rows + result.random_rows + 1 == tokenizer.vocab_size


def test_vectors_equal_plain_gensim_on_piece_strings(corpus, result, tokenizer):
    sentences = [[tokenizer.sp.id_to_piece(i) for i in doc] for doc in tokenizer.encode(corpus[0])]
    plain = Word2Vec(sentences, vector_size=16, window=CFG.window, negative=CFG.negative, sg=1, min_count=1,
                     sample=CFG.sample, workers=1, seed=3, epochs=3)
    for key in plain.wv.index_to_key:
        np.testing.assert_array_equal(result.vectors[tokenizer.sp.piece_to_id(key)], plain.wv[key])


def test_unseen_rows_are_random_at_the_trained_scale(result):
    random_rows = result.vectors[~result.trained]
    random_rows = random_rows[np.any(random_rows != 0, axis=1)]  # all but pad
    assert len(random_rows) == result.random_rows > 0
    trained_std = result.vectors[result.trained].std()
    assert 0.5 * trained_std < random_rows.std() < 2 * trained_std


def test_same_seed_one_worker_gives_identical_vectors(piece_corpus, result, tokenizer):
    again = train_embeddings(piece_corpus, CFG, progress=False)
    np.testing.assert_array_equal(again.vectors, result.vectors)
    assert again.losses == result.losses


def test_loss_per_token_matches_gensims_own_total(piece_corpus, result, tokenizer):
    # On a corpus this small gensim's float32 running total is still exact enough to check ours against.
    plain = Word2Vec(list(piece_corpus), vector_size=16, window=CFG.window, negative=CFG.negative, sg=1, min_count=1,
                     workers=1, seed=3, epochs=3, compute_loss=True)
    ours = sum(result.losses) * piece_corpus.n_tokens()
    assert len(result.losses) == 3 and all(loss > 0 for loss in result.losses)
    assert ours == pytest.approx(plain.get_latest_training_loss(), rel=1e-3)


def test_loss_of_long_epochs_is_measured_on_a_sample_of_jobs(piece_corpus, monkeypatch):
    # Twenty copies: ~180,000 tokens in ~18 gensim jobs, every 4th measured once sampling starts at 2 jobs.
    monkeypatch.setattr(embeddings, "LOSS_SAMPLE_MIN_JOBS", 2)
    big = PieceCorpus(piece_corpus.arrays * 20, piece_corpus.pieces.tolist())
    ours = train_embeddings(big, EmbedConfig(dim=16, epochs=1, min_count=1, seed=3), progress=False).losses
    plain = Word2Vec(list(big), vector_size=16, sg=1, min_count=1, workers=1, seed=3, epochs=1, compute_loss=True)
    assert ours[0] == pytest.approx(plain.get_latest_training_loss() / big.n_tokens(), rel=0.05)


def test_cbow_trains_too(piece_corpus, tokenizer):
    cbow = train_embeddings(piece_corpus, EmbedConfig(algorithm="cbow", dim=8, epochs=1, min_count=1), progress=False)
    assert cbow.vectors.shape == (tokenizer.vocab_size, 8) and cbow.losses[0] > 0


def test_related_pieces_end_up_closer_than_unrelated(piece_corpus, tokenizer):
    vecs = train_embeddings(piece_corpus, EmbedConfig(dim=24, epochs=10, min_count=1, workers=1, seed=0),
                            progress=False).vectors
    ids = {w: tokenizer.sp.piece_to_id("▁" + w) for w in ("rocket", "orbit", "brake")}

    def cos(a, b):
        return float(vecs[a] @ vecs[b] / np.linalg.norm(vecs[a]) / np.linalg.norm(vecs[b]))

    assert cos(ids["rocket"], ids["orbit"]) > cos(ids["rocket"], ids["brake"])


def test_long_documents_are_chunked_not_truncated():
    doc = list(range(10, 30)) * 1500  # 30,000 tokens
    pieces = [f"p{i}" for i in range(30)]
    sentences = list(PieceCorpus([TokenArray.from_lists([[7], doc, []])], pieces))
    assert sentences[0] == ["p7"] and sum(map(len, sentences)) == 30_001 and max(map(len, sentences)) <= 10_000
    assert sentences[1] + sentences[2] + sentences[3] == [pieces[i] for i in doc]


def test_no_piece_reaching_min_count_is_a_data_error(piece_corpus, tokenizer):
    with pytest.raises(DataError, match="min_count=1000000"):
        train_embeddings(piece_corpus, EmbedConfig(dim=4, min_count=1_000_000), progress=False)


def test_word_ids_need_trained_pieces_and_fall_back_to_lowercase(result, tokenizer):
    ids = word_ids(tokenizer, ["rocket", "ROCKET", "ξψω"], result.trained)
    assert ids["rocket"] == ids["ROCKET"] == tokenizer.encode(["rocket"])[0]
    assert ids["ξψω"] is None  # byte-fallback pieces never seen in training


def test_similarity_is_spearman_over_covered_pairs(result, tokenizer, tmp_path):
    (tmp_path / "pairs.tsv").write_text("# Word 1\tWord 2\tscore\nrocket\torbit\t9\nrocket\tbrake\t2\n"
                                        "engine\tbrake\t8\nmoon\tplanet\t7.5\nξψω\tmoon\t5\n", encoding="utf-8")
    pairs = read_pairs(tmp_path / "pairs.tsv")
    assert pairs[0] == ("rocket", "orbit", 9.0) and len(pairs) == 5
    sim = similarity(result.vectors, result.trained, tokenizer, pairs)
    ids = word_ids(tokenizer, ["rocket", "orbit", "brake", "engine", "moon", "planet"], result.trained)
    cos = [float(word_vector(result.vectors, ids[a]) @ word_vector(result.vectors, ids[b])
                 / np.linalg.norm(word_vector(result.vectors, ids[a])) / np.linalg.norm(word_vector(result.vectors, ids[b])))
           for a, b, _ in pairs[:4]]
    assert sim.pairs == 5 and sim.covered == pytest.approx(0.8)
    assert sim.whole_words == pytest.approx(sum(len(ids[a]) == len(ids[b]) == 1 for a, b, _ in pairs[:4]) / 5)
    assert sim.spearman == pytest.approx(spearmanr([9, 2, 8, 7.5], cos).statistic)


def test_gensims_similarity_files_are_found_and_read(result, tokenizer):
    sims = similarity_benchmarks(result.vectors, result.trained, tokenizer)
    assert {n: s.pairs for n, s in sims.items()} == {"wordsim353": 353, "simlex999": 999}
    # The toy corpus lacks letters such as k, x and q: words holding them stay uncovered.
    assert all(0.1 < s.covered < 0.5 and s.whole_words < s.covered for s in sims.values())
    assert all(s.spearman is not None and -1 <= s.spearman <= 1 for s in sims.values())


def test_probe_lists_neighbours_of_words_and_pieces(result, tokenizer):
    out = probe(result.vectors, result.trained, tokenizer, ["rocket", "rockets", ""], k=4)
    one = out["rocket"]
    assert one["pieces"] == ["▁rocket"] and one["trained"] and "per_piece" not in one
    assert len(one["word"]) == 4 and "▁rocket" not in [p for p, _ in one["word"]]
    assert [c for _, c in one["word"]] == sorted((c for _, c in one["word"]), reverse=True)
    multi = out["rockets"]
    assert len(multi["pieces"]) > 1 and set(multi["per_piece"]) == set(multi["pieces"])
    assert out[""] == {"pieces": [], "trained": False}


def test_save_load_checks_the_tokenizer(result, tmp_path):
    embeddings.save(tmp_path, result, CFG, "sha-a")
    np.testing.assert_array_equal(embeddings.load(tmp_path, "sha-a"), result.vectors)
    with pytest.raises(ArtifactError, match="aligned to tokenizer sha-a"):
        embeddings.load(tmp_path, "sha-b")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_a_line_per_epoch_in_a_log(piece_corpus, capfd, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="reprotext.embeddings")
    train_embeddings(piece_corpus, CFG, progress=True)  # pytest captures stderr: no terminal, as in a log or CI
    assert "word2vec" not in capfd.readouterr().err
    lines = [r.getMessage() for r in caplog.records if r.name == "reprotext.embeddings"]
    assert [line.split(":")[0] for line in lines] == [f"word2vec epoch {i}/3" for i in (1, 2, 3)]
    caplog.clear()
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    train_embeddings(piece_corpus, CFG, progress=True)
    assert "word2vec" in terminal.getvalue() and not [r for r in caplog.records if r.name == "reprotext.embeddings"]
