import numpy as np
import pytest

from reprotext.errors import ConfigError
from reprotext.tokenizer import TokenArray
from reprotext.zeroshot import classify, default_description, descriptions, mean_vectors, scores


def test_default_descriptions_split_label_names_into_words():
    assert default_description("money-fx") == "money fx"
    assert default_description("sci.space") == "sci space"
    assert descriptions(["acq", "my-label"], {"acq": "acquisition merger"}) == ["acquisition merger", "my label"]


def test_builtin_label_sets_get_their_descriptions_and_overrides_win():
    r8 = descriptions(["earn", "money-fx", "ship"], {"ship": "boats"})
    assert r8[0].startswith("earnings profit") and "currency" in r8[1] and r8[2] == "boats"
    assert descriptions(["sci.space", "rec.autos"], {})[0] == "space nasa orbit launch shuttle"
    # one label outside every builtin set: none of them applies
    assert descriptions(["earn", "unknown-thing"], {}) == ["earn", "unknown thing"]
    with pytest.raises(ConfigError, match="zeroshot_descriptions"):
        descriptions(["acq"], {"earn": "profit"})


def test_mean_vectors_ignore_padding_and_give_zeros_for_empty_documents():
    vectors = np.arange(12, dtype=float).reshape(4, 3)
    docs = TokenArray.from_lists([[1, 2], [], [0, 3]])
    out = mean_vectors(vectors, docs)
    np.testing.assert_allclose(out, [[4.5, 5.5, 6.5], [0, 0, 0], [9, 10, 11]])


def test_zero_shot_beats_chance_where_the_answer_is_in_the_vectors(tokenizer, corpus):
    """Topic words share a direction with their label name; common words are noise. Chance is 1/3."""
    texts, labels = corpus
    rng = np.random.default_rng(0)
    vectors = rng.normal(0, 1.0, (tokenizer.vocab_size, 16))
    names = ["space", "sport", "cars"]
    from conftest import TOPICS

    for c, name in enumerate(names):
        axis = np.zeros(16)
        axis[c] = 8.0
        for word in TOPICS[name].split() + [name]:
            for i in tokenizer.encode([word])[0]:
                vectors[i] += axis
    docs = TokenArray.from_lists(tokenizer.encode(texts))
    sims = classify(vectors, tokenizer, docs, names, names)
    accuracy = float(np.mean([names[i] == y for i, y in zip(sims.argmax(1), labels)]))
    assert accuracy > 0.8  # chance: 1/3
    # Without the shared signal the same method is at chance level: the test can fail.
    noise = rng.normal(0, 1.0, vectors.shape)
    sims = classify(noise, tokenizer, docs, names, names)
    assert float(np.mean([names[i] == y for i, y in zip(sims.argmax(1), labels)])) < 0.6


def test_scores_are_cosines():
    docs = np.array([[1.0, 0.0], [0.0, 2.0]])
    labels = np.array([[3.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(scores(docs, labels, center=False), np.eye(2))
