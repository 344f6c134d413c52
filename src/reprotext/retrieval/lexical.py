"""Lexical scorers over raw text: TF-IDF cosine (scikit-learn) and Okapi BM25 (``bm25s``)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
    ``bm25s.BM25.get_scores`` forms for one query of distinct terms.
    """

    def __init__(self, docs: Sequence[str], k1: float = 1.5, b: float = 0.75):
        import bm25s
        import scipy.sparse as sp

        self._tokenize = lambda texts: bm25s.tokenize(list(texts), stopwords=None, return_ids=False,
                                                      show_progress=False)
        self.model = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.model.index(self._tokenize(docs), show_progress=False)
        s = self.model.scores
        self.weights = sp.csc_matrix((s["data"], s["indices"], s["indptr"]),
                                     shape=(s["num_docs"], len(s["indptr"]) - 1)).T.tocsr()  # (terms, docs)

    def query_matrix(self, queries: Sequence[str]):
        import scipy.sparse as sp

        vocab = self.model.vocab_dict
        rows, cols = [], []
        for i, tokens in enumerate(self._tokenize(queries)):
            ids = {vocab[t] for t in tokens if t and t in vocab}
            rows.extend([i] * len(ids))
            cols.extend(ids)
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                             shape=(len(queries), self.weights.shape[0]))

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        return (self.query_matrix(queries) @ self.weights).toarray()


