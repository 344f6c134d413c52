import numpy as np
import pytest

from reprotext import embeddings
from reprotext.config import EmbedConfig
from reprotext.embeddings import PieceCorpus, nearest, train_embeddings
from reprotext.errors import ArtifactError
from reprotext.tokenizer import PAD, TokenArray

CFG = EmbedConfig(dim=16, epochs=3, min_count=1, workers=1, seed=3)


@pytest.fixture(scope="module")
def piece_corpus(corpus, tokenizer):
    texts, _ = corpus
    arr = TokenArray.from_lists(tokenizer.encode(texts))
    return PieceCorpus([arr], tokenizer.pieces())


def test_rows_align_with_tokenizer_ids(piece_corpus, tokenizer):
    result = train_embeddings(piece_corpus, CFG)
    assert result.vectors.shape == (tokenizer.vocab_size, 16)
    assert result.vectors.dtype == np.float32
    assert not result.vectors[PAD].any()
    # Every trained row is its own nearest neighbour: row i really is piece i's vector.
    seen = {int(i) for i in piece_corpus.arrays[0].ids}
    for row in sorted(seen)[:50]:
        assert nearest(result.vectors, row, k=1) == [row]
    assert result.trained_rows == len(seen - {PAD})
    assert result.trained_rows + result.random_rows + 1 == tokenizer.vocab_size


def test_same_seed_one_worker_gives_identical_vectors(piece_corpus):
    a = train_embeddings(piece_corpus, CFG).vectors
    b = train_embeddings(piece_corpus, CFG).vectors
    np.testing.assert_array_equal(a, b)


def test_loss_is_recorded_per_epoch(piece_corpus):
    result = train_embeddings(piece_corpus, CFG)
    assert len(result.losses) == 3 and all(loss > 0 for loss in result.losses)


def test_related_pieces_end_up_closer_than_unrelated(piece_corpus, tokenizer):
    vecs = train_embeddings(piece_corpus, EmbedConfig(dim=24, epochs=10, min_count=1, workers=1, seed=0)).vectors
    ids = {w: tokenizer.sp.piece_to_id("▁" + w) for w in ("rocket", "orbit", "brake")}

    def cos(a, b):
        return float(vecs[a] @ vecs[b] / np.linalg.norm(vecs[a]) / np.linalg.norm(vecs[b]))

    assert cos(ids["rocket"], ids["orbit"]) > cos(ids["rocket"], ids["brake"])


def test_long_documents_are_chunked_not_truncated(tokenizer):
    doc = list(range(10, 30)) * 1500  # 30,000 tokens
    corpus = PieceCorpus([TokenArray.from_lists([doc])], tokenizer.pieces())
    sentences = list(corpus)
    assert sum(map(len, sentences)) == 30_000 and max(map(len, sentences)) <= 10_000


def test_save_load_checks_the_tokenizer(piece_corpus, tmp_path):
    result = train_embeddings(piece_corpus, CFG)
    embeddings.save(tmp_path, result, CFG, "sha-a")
    np.testing.assert_array_equal(embeddings.load(tmp_path, "sha-a"), result.vectors)
    with pytest.raises(ArtifactError, match="aligned to tokenizer sha-a"):
        embeddings.load(tmp_path, "sha-b")
