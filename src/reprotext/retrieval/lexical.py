"""Lexical scorers over raw text: TF-IDF cosine (scikit-learn) and Okapi BM25 (``bm25s``)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reprotext.errors import ArtifactError, ReprotextError
from reprotext.io import FORMAT_VERSION, check_format, read_json, write_json

BM25_META = "bm25.json"


class TfidfScorer:
    """TF-IDF (word unigrams, sublinear tf, fit on the collection) cosine between queries and documents."""

    def __init__(self, docs: Sequence[str], max_features: int | None = None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(sublinear_tf=True, max_features=max_features)
        self.docs = self.vectorizer.fit_transform(list(docs))  # rows are L2-normalised
        self.docs_t = self.docs.T.tocsr()

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        return (self.vectorizer.transform(list(queries)) @ self.docs_t).toarray()


class BM25Scorer:
    """Okapi BM25 (``bm25s``, Lucene variant) over the collection; every query term counted once (k3 = 0).

    ``bm25s`` builds the index (the BM25 weight of every term in every document);
    a batch of queries is scored at once as a sparse product with it, the sum
    ``bm25s.BM25.get_scores`` forms for one query of distinct terms. Terms are
    lowercased words of two or more characters; ``stopwords`` ("english" or
    None) drops bm25s's English stop words and ``stemmer`` (a Snowball language
    of PyStemmer, e.g. "english", or None) stems them.
    """

    def __init__(self, docs: Sequence[str] | None, k1: float = 1.5, b: float = 0.75, stopwords: str | None = None,
                 stemmer: str | None = None, *, _model=None):
        import bm25s

        self.settings = {"k1": k1, "b": b, "stopwords": stopwords, "stemmer": stemmer}
        stem = None
        if stemmer:
            try:
                import Stemmer
            except ImportError as exc:
                raise ReprotextError("stemming needs PyStemmer; `pip install PyStemmer` or set the stemmer to null") \
                    from exc
            try:
                stem = Stemmer.Stemmer(stemmer).stemWords
            except KeyError as exc:
                raise ReprotextError(f"stemmer {stemmer!r} is not a Snowball language; use one of "
                                     f"{', '.join(Stemmer.algorithms())} or null") from exc
        self._tokenize = lambda texts: bm25s.tokenize(list(texts), stopwords=stopwords, stemmer=stem,
                                                      return_ids=False, show_progress=False)
        if _model is None:
            _model = bm25s.BM25(k1=k1, b=b, method="lucene")
            _model.index(self._tokenize(docs), show_progress=False)
        self.model = _model
        self._weights()

    def _weights(self) -> None:
        import scipy.sparse as sp

        s = self.model.scores
        # (terms, docs), in float64: bm25s numbers the terms in the order of a set of strings, which changes with
        # the process's hash seed, and so does the order of a query's terms in the sum. Summed in float64 the few
        # float32 weights of a query add up exactly, so the float32 scores repeat from one process to the next.
        self.weights = sp.csc_matrix((s["data"].astype(np.float64), s["indices"], s["indptr"]),
                                     shape=(s["num_docs"], len(s["indptr"]) - 1)).T.tocsr()

    def __len__(self) -> int:
        return self.weights.shape[1]

    def query_matrix(self, queries: Sequence[str]):
        import scipy.sparse as sp

        vocab = self.model.vocab_dict
        rows, cols = [], []
        for i, tokens in enumerate(self._tokenize(queries)):
            ids = {vocab[t] for t in tokens if t and t in vocab}
            rows.extend([i] * len(ids))
            cols.extend(ids)
        return sp.csr_matrix((np.ones(len(rows), np.float64), (rows, cols)),
                             shape=(len(queries), self.weights.shape[0]))

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """(B, N) float32 BM25 scores of every document for each query."""
        return (self.query_matrix(queries) @ self.weights).toarray().astype(np.float32)

    def save(self, directory: str | Path) -> None:
        """The bm25s index and the tokenization settings into ``directory`` (which must exist)."""
        directory = Path(directory)
        self.model.save(str(directory), show_progress=False)
        write_json(directory / BM25_META, {"format_version": FORMAT_VERSION, **self.settings})

    @classmethod
    def load(cls, directory: str | Path) -> BM25Scorer:
        import bm25s

        directory = Path(directory)
        try:
            meta = read_json(directory / BM25_META)
            model = bm25s.BM25.load(str(directory), show_progress=False, verbosity=0)
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"{directory}: not a readable BM25 index ({exc.__class__.__name__}); rebuild it with "
                                "`reprotext index --method bm25`") from exc
        check_format(directory, meta, "BM25 index", "rebuild it with `reprotext index`")
        return cls(None, meta["k1"], meta["b"], meta["stopwords"], meta["stemmer"], _model=model)
