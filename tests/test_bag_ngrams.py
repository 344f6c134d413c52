"""The bag's hashed n-grams, its poolings, sparse updates and the optimiser that pairs them."""
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.feature_extraction.text import TfidfVectorizer

from reprotext.errors import ArtifactError
from reprotext.models import (Classifier, ModelConfig, copy_statistics, encoder_statistics, load_model,
                              load_statistics, save_model)
from reprotext.models.bag import BagEncoder, bag_statistics, word_starts
from reprotext.models.ngrams import ngram_features, weighted_bags
from reprotext.models.pooling import masked_mean
from reprotext.training.optim import Composite, make_optimizer

# A toy vocabulary: ids 0-5 special, then word-initial pieces (U+2581) and continuations.
PIECES = ["<pad>", "<unk>", "<s>", "</s>", "[CLS]", "[MASK]", "\u2581new", "\u2581york", "\u2581is", "er", "s",
          "\u2581big", "\u2581the"]
V = len(PIECES)
WS = word_starts(PIECES)


def bag(pooling="tfidf", piece_ngrams=1, word_ngrams=2, buckets=1000, sparse=True, dim=4) -> BagEncoder:
    torch.manual_seed(0)
    enc = BagEncoder(torch.nn.Embedding(V, dim, padding_idx=0), pooling, piece_ngrams, word_ngrams, buckets, sparse)
    return enc


def prepared(enc: BagEncoder, batches: list[torch.Tensor]) -> BagEncoder:
    opts = {"pooling": enc.pooling, "piece_ngrams": enc.piece_ngrams, "word_ngrams": enc.word_ngrams,
            "buckets": enc.buckets, "min_count": enc.min_count}
    enc.load_statistics(bag_statistics(opts, PIECES, batches)[1])
    return enc


def word_feature(ids: list[int], n: int, word_n: int = 2) -> list[int]:
    """The bucket ids of the word n-grams (n = 1 words, 2 bigrams) of one document."""
    feats, mask = ngram_features(torch.tensor([ids]), WS, 1, word_n, 1000)
    k = n  # feature 0 is the piece; with piece_n = 1, word n-grams n sit at k = n
    return feats[0, :, k][mask[0, :, k]].tolist()


def test_words_are_rebuilt_from_pieces_and_hash_the_same_anywhere():
    # "new york" vs "newer york": ▁new+er is one word, unlike ▁new alone.
    a = word_feature([6, 7, 8], 1)  # new york is
    b = word_feature([11, 6, 9, 7], 1)  # big newer york
    assert len(a) == 3 and len(b) == 3  # one feature per word, at its last piece
    assert a[1] == b[2]  # "york" lands in the same bucket in both documents
    assert a[0] not in b  # "new" is not "newer"
    bigram_a, bigram_b = word_feature([6, 7, 8], 2), word_feature([12, 6, 7, 0, 0], 2)
    assert len(bigram_a) == 2 and len(bigram_b) == 2  # padding makes no bigram
    assert bigram_a[0] == bigram_b[1]  # "new york" in both
    assert word_feature([7, 6], 2) != word_feature([6, 7], 2)  # order matters


def test_hash_is_the_same_in_another_process():
    ids = [[6, 9, 7, 8, 11, 10, 12, 7]]
    here = ngram_features(torch.tensor(ids), WS, 3, 3, 1_000_003)[0].tolist()
    code = ("import torch, json; from reprotext.models.ngrams import ngram_features; "
            "from reprotext.models.bag import word_starts; "
            f"print(json.dumps(ngram_features(torch.tensor({ids}), word_starts({PIECES!r}), 3, 3, 1_000_003)[0]"
            ".tolist()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert eval(out.stdout) == here


def test_tfidf_pooling_weights_are_scikit_learns():
    docs = [[6, 7, 7, 8], [11, 12, 6], [12, 12, 12, 7]]
    enc = bag("tfidf", word_ngrams=0, buckets=0)
    batches = [torch.tensor([d + [0] * (4 - len(d)) for d in docs])]
    prepared(enc, batches)
    f, w, d = weighted_bags(*enc.features(batches[0]), enc.idf)
    ours = torch.zeros(3, V).index_put_((d, f), w).numpy()
    vec = TfidfVectorizer(sublinear_tf=True, token_pattern=r"\S+", vocabulary=[str(i) for i in range(V)])
    theirs = vec.fit_transform([" ".join(map(str, doc)) for doc in docs]).toarray()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    # and the pooled vector is that weighting of the rows
    np.testing.assert_allclose(enc(batches[0]).detach().numpy(), ours @ enc.embedding.weight.detach().numpy(),
                               atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "max", "attention"])
def test_unweighted_poolings_over_pieces_match_the_plain_reductions(pooling):
    ids = torch.tensor([[6, 7, 7, 8], [11, 12, 0, 0]])
    enc = bag(pooling, word_ngrams=0, buckets=0, sparse=True)  # sparse: the general path, not the fast one
    x, mask = enc.embedding(ids), ids != 0
    expected = x.masked_fill(~mask.unsqueeze(-1), -1e9).amax(1) if pooling == "max" else masked_mean(x, mask)
    torch.testing.assert_close(enc(ids), expected)  # attention starts as the mean (zero query)


def test_attention_pooling_learns_its_weights():
    enc = prepared(bag("attention", word_ngrams=1, buckets=100), [])
    ids = torch.tensor([[6, 7, 8]])
    with torch.no_grad():
        enc.query.copy_(enc.embedding.weight[7] * 50)  # attend to "york"
    out = enc(ids)
    assert torch.allclose(out[0], enc.embedding.weight[7], atol=1e-2)


def test_a_bag_without_statistics_refuses_to_run():
    with pytest.raises(ArtifactError, match="load_statistics"):
        bag("tfidf")(torch.tensor([[6, 7]]))


def test_sparse_step_touches_only_the_rows_in_the_batch():
    enc = prepared(bag("tfidf", word_ngrams=2, buckets=50), [torch.tensor([[6, 7, 8], [11, 12, 0]])])
    head = torch.nn.Linear(4, 2)
    with torch.no_grad():
        enc.ngrams.weight.normal_()
    groups = [{"params": list(enc.parameters()) + list(head.parameters())}]
    opt = make_optimizer(groups, "adamw", 0.1, 0.9, 0.01, enc.sparse_parameters())
    assert isinstance(opt, Composite)
    before_e, before_g = enc.embedding.weight.detach().clone(), enc.ngrams.weight.detach().clone()
    ids = torch.tensor([[6, 7]])
    F.cross_entropy(head(enc(ids)), torch.tensor([1])).backward()
    assert enc.embedding.weight.grad.is_sparse and enc.ngrams.weight.grad.is_sparse
    opt.step()
    feats, mask = enc.features(ids)
    used = set(feats[mask].tolist())
    changed_e = set(torch.nonzero((enc.embedding.weight != before_e).any(1)).flatten().tolist())
    changed_g = {V + i for i in torch.nonzero((enc.ngrams.weight != before_g).any(1)).flatten().tolist()}
    assert changed_e == {i for i in used if i < V} == {6, 7}
    assert changed_g == {i for i in used if i >= V} and len(changed_g) == 3  # new, york, new york


def test_composite_optimizer_schedules_and_saves_both_parts():
    enc = bag("tfidf", word_ngrams=0, buckets=0)
    head = torch.nn.Linear(4, 2)
    groups = [{"params": list(head.parameters())}, {"params": list(enc.parameters()), "lr": 0.05}]
    opt = make_optimizer(groups, "adam", 0.1, 0.9, 0.0, enc.sparse_parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.025]
    assert [g["lr"] for o in opt.optimizers for g in o.param_groups] == [0.05, 0.025]
    prepared(enc, [torch.tensor([[6, 7]])])
    F.cross_entropy(head(enc(torch.tensor([[6, 7]]))), torch.tensor([0])).backward()
    opt.step()
    sched.step()
    state = opt.state_dict()
    again = make_optimizer(groups, "adam", 0.1, 0.9, 0.0, enc.sparse_parameters())
    again.load_state_dict(state)
    assert again.state_dict()["optimizers"][1]["state"][0]["step"] == 1
    assert len(opt.state) == len(list(head.parameters())) + len(list(enc.parameters()))  # every part's, as one
    opt.state.clear()  # what a finished fit calls: every part's moments go, not only the first part's
    assert [len(o.state) for o in opt.optimizers] == [0, 0]


def test_saved_bag_keeps_its_statistics_and_predictions(tmp_path):
    options, stats = encoder_statistics("bag", {"pooling": "tfidf", "word_ngrams": 2, "min_count": 1, "sparse": True},
                                        PIECES, [torch.tensor([[6, 7, 8], [12, 11, 0]])])
    assert options["rows"] == 5 + 3  # words new york is big the (5) and bigrams new-york, york-is, the-big (3)
    config = ModelConfig("bag", V, 4, ("a", "b"), encoder=options)
    model = Classifier(config)
    load_statistics(model, stats)
    with torch.no_grad():
        model.encoder.ngrams.weight.normal_()
    ids = torch.tensor([[6, 7, 8, 11]])
    save_model(model.eval(), tmp_path, {})
    loaded, _ = load_model(tmp_path)
    torch.testing.assert_close(loaded(ids), model(ids))
    scratch = Classifier(config)
    copy_statistics(scratch, model)
    assert torch.equal(scratch.encoder.idf, model.encoder.idf) and bool(scratch.encoder.prepared)


def test_lightning_fits_the_sparse_ngram_bag(corpus, tokenizer):
    """The default bag (tfidf, counted word bigrams, sparse tables) through the real fit loop on BPE pieces."""
    from reprotext.tokenizer import TokenArray
    from reprotext.training import FitSettings, TokenDataset, encode_labels, fit, seed_everything
    from reprotext.training.data import id_batches

    texts, labels = corpus
    known = sorted(set(labels))
    arr, y = TokenArray.from_lists(tokenizer.encode(texts)), encode_labels(labels, known, "corpus")
    cut = int(0.7 * len(texts))
    train = TokenDataset(TokenArray(arr.ids, arr.offsets[: cut + 1]), y[:cut], 64)
    dev = TokenDataset(TokenArray(arr.ids, arr.offsets[cut:]), y[cut:], 64)
    options, stats = encoder_statistics("bag", {"pooling": "tfidf", "word_ngrams": 2, "min_count": 2, "sparse": True},
                                        tokenizer.pieces(), id_batches(train))
    assert options["rows"] > 0 and stats["idf"].max() > 1  # counted from the pieces' words, not the initial values
    seed_everything(0)
    model = Classifier(ModelConfig("bag", tokenizer.vocab_size, 16, tuple(known), encoder=options))
    load_statistics(model, stats)
    settings = FitSettings(lr=0.05, weight_decay=0.01, batch_size=16, max_epochs=6, patience=3, seed=0,
                           progress_bar=False)
    assert fit(model, train, dev, settings).best["dev/accuracy"] > 0.9


def test_counted_vocabulary_keeps_frequent_ngrams_exactly_and_drops_the_rare():
    docs = [torch.tensor([[6, 7, 8, 0]]), torch.tensor([[6, 7, 11, 12]])]  # "new york" twice, the rest once
    options, stats = bag_statistics({"pooling": "tfidf", "word_ngrams": 2, "min_count": 2}, PIECES, docs)
    assert options["rows"] == 3  # new, york, new york
    enc = BagEncoder(torch.nn.Embedding(V, 4), **options)
    enc.load_statistics(stats)
    feats, mask = enc.features(torch.tensor([[6, 7, 8, 12]]))
    rows = sorted(feats[mask].tolist())
    assert [r for r in rows if r < V] == [6, 7, 8, 12]  # every piece stays
    assert [r - V for r in rows if r >= V] == [0, 1, 2]  # only the counted n-grams, each its own row
    # IDF: "new" in 2 of 2 documents, "big" (a piece) in 1
    assert stats["idf"][6].item() == pytest.approx(1.0) and stats["idf"][11].item() > 1.0


def test_row_sparse_adam_is_torchs_sparse_adam_to_the_bit():
    """The row-wise update does torch's SparseAdam's arithmetic: same weights and moments after repeated rows."""
    import copy

    from reprotext.training.optim import RowSparseAdam

    torch.manual_seed(0)
    ours_table = torch.nn.EmbeddingBag(500, 8, mode="sum", sparse=True)
    torch_table = copy.deepcopy(ours_table)
    ours, theirs = RowSparseAdam(ours_table.parameters(), lr=0.01), torch.optim.SparseAdam(torch_table.parameters(), lr=0.01)
    for step in range(12):
        ids = torch.randint(0, 500 if step % 2 else 20, (200,))  # narrow steps repeat rows within the batch
        for table, opt in ((ours_table, ours), (torch_table, theirs)):
            opt.zero_grad()
            table(ids, torch.arange(0, 200, 20)).pow(2).sum().backward()
            opt.step()
    assert torch.equal(ours_table.weight, torch_table.weight)
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(ours.state[ours_table.weight][key], theirs.state[torch_table.weight][key])
    assert ours.state[ours_table.weight]["step"] == 12
    fresh = torch.nn.EmbeddingBag(500, 8, mode="sum", sparse=True)
    before = fresh.weight.detach().clone()
    opt = RowSparseAdam(fresh.parameters(), lr=0.01)
    fresh(torch.tensor([3, 4]), torch.tensor([0])).sum().backward()
    opt.step()
    changed = (fresh.weight != before).any(1)
    assert changed.nonzero().flatten().tolist() == [3, 4]  # lazy: only the batch's rows move


def test_document_frequencies_count_each_document_once():
    """count_ngrams' distinct (document, n-gram) pairs agree with torch.unique over the stacked pairs."""
    from reprotext.models.ngrams import _distinct_per_document

    g = torch.Generator().manual_seed(0)
    doc = torch.sort(torch.randint(0, 16, (5000,), generator=g)).values
    h = torch.randint(-(2**62), 2**62, (5000,), generator=g)
    h[::2] = h[1::2]  # many repeats, within and across documents
    expected = torch.unique(torch.stack([doc, h]), dim=1)[1]
    assert torch.equal(torch.sort(_distinct_per_document(doc, h)).values, torch.sort(expected).values)


def test_nb_weights_are_the_naive_bayes_log_count_ratio_times_the_idf():
    """Two classes: each feature's IDF times |r|, r NBSVM's log-count ratio over binarised counts (alpha 1)."""
    docs = [[6, 7, 7, 8], [6, 7, 11, 0], [12, 12, 11, 0], [12, 8, 11, 0]]  # "new york" in class 0, "the big" in 1
    y = [0, 0, 1, 1]
    batches = [torch.tensor(docs[:3]), torch.tensor(docs[3:])]  # labels follow the documents across batches
    plain = bag_statistics({"pooling": "tfidf"}, PIECES, batches)[1]["idf"]
    _, stats = bag_statistics({"pooling": "tfidf", "nb_weights": True}, PIECES, iter(batches), y, 2)
    present = np.zeros((4, V))
    for i, d in enumerate(docs):
        present[i, [t for t in d if t]] = 1  # binarised: each document counts a feature once
    p, q = 1 + present[:2].sum(0), 1 + present[2:].sum(0)
    r = np.log(p / p.sum()) - np.log(q / q.sum())
    np.testing.assert_allclose(stats["idf"].numpy(), plain.numpy() * np.abs(r), rtol=1e-5)
    assert stats["idf"][7] > stats["idf"][8]  # "york" (class 0 only, twice) tells more than "is" (once in each)
    with pytest.raises(ValueError, match="labels"):
        bag_statistics({"pooling": "tfidf", "nb_weights": True}, PIECES, batches)


def test_nb_ratio_takes_the_class_a_feature_tells_best_and_counts_ngram_rows(monkeypatch):
    from reprotext.models import ngrams
    from reprotext.models.ngrams import class_document_frequency, nb_ratio

    docs = [torch.tensor([[6, 7, 8], [6, 7, 0], [11, 12, 0], [8, 12, 0], [6, 7, 12], [11, 8, 0]])]
    y = [0, 0, 1, 1, 2, 2]
    options, stats = bag_statistics({"pooling": "tfidf", "word_ngrams": 2, "min_count": 2, "nb_weights": True},
                                    PIECES, docs, y, 3)
    counts = class_document_frequency(docs, y, 3, V + options["rows"], WS, 1, 2, keys=stats["keys"]).to_dense()
    assert counts[:, 6].tolist() == [2, 0, 1] and counts.sum().item() > counts[:, :V].sum().item()  # n-gram rows too
    one_vs_rest = [abs(np.log((1 + counts[c] / 1) / (1 + counts[c]).sum()) -
                       np.log((1 + counts.sum(0) - counts[c]) / (1 + counts.sum(0) - counts[c]).sum())) for c in range(3)]
    np.testing.assert_allclose(nb_ratio(counts).numpy(), np.max(np.stack(one_vs_rest), 0), rtol=1e-5)
    assert torch.equal(nb_ratio(counts, chunk=1), nb_ratio(counts))  # one class at a time: the same weights
    monkeypatch.setattr(ngrams, "_MERGE_PAIRS", 1)  # fold the counts after every batch: the same counts
    one_by_one = [d.unsqueeze(0) for d in docs[0]]
    assert torch.equal(class_document_frequency(one_by_one, y, 3, V + options["rows"], WS, 1, 2,
                                                keys=stats["keys"]).to_dense(), counts)
    with pytest.raises(ValueError, match="labels for"):
        class_document_frequency(docs, y[:4], 3, V, WS, 1, 0)


def test_an_ensemble_gives_every_bag_member_the_bag_statistics_and_keeps_them_through_save_and_load(tmp_path):
    docs = [torch.tensor([[6, 7, 8], [12, 11, 0]])]
    options, stats = encoder_statistics("ensemble", {"members": {
        "bag": {"pooling": "tfidf", "word_ngrams": 2, "min_count": 1, "sparse": True, "nb_weights": True},
        "cnn": {"widths": [2], "filters": 3}}, "copies": 2}, PIECES, docs, [0, 1], 2)
    alone, own = encoder_statistics("bag", options["members"]["bag"], PIECES, docs, [0, 1], 2)
    assert options["members"]["bag"]["rows"] == 8 and options["members"]["cnn"] == {"widths": [2], "filters": 3}
    assert set(stats) == {f"bag.{k}" for k in own}
    model = Classifier(ModelConfig("ensemble", V, 4, ("a", "b"), encoder=options))
    load_statistics(model, stats)
    bags = [model.encoder.members["bag0"], model.encoder.members["bag1"]]
    for bag in bags:
        torch.testing.assert_close(bag.idf, own["idf"])
    assert model.sparse_parameters() == [p for bag in bags for p in bag.sparse_parameters()] != []
    with torch.no_grad():
        for bag in bags:
            bag.ngrams.weight.normal_()
    ids = torch.tensor([[6, 7, 8, 11]])
    save_model(model.eval(), tmp_path, {})
    loaded, _ = load_model(tmp_path)
    torch.testing.assert_close(loaded(ids), model(ids))
