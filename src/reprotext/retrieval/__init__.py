"""Retrieval with learned representations, as one package.

- :mod:`.beir`: a test collection in the BEIR layout (corpus, queries, qrels) from a user's folder;
- :mod:`.lexical`: BM25 (``bm25s``, optional stemming and stop words) and TF-IDF cosine;
- :mod:`.dense`: document vectors and an exact cosine index;
- :mod:`.dual_encoder`: the DSSM-style dual encoder and its in-batch-negatives loss;
- :mod:`.fusion`: hybrid scores (reciprocal-rank or normalised-score fusion);
- :mod:`.ir_metrics`: nDCG, recall, MRR from ``ir-measures`` over judged queries;
- :mod:`.search_index`: a saved BM25 / dense / hybrid index behind ``reprotext index`` and ``reprotext search``;
- :mod:`.qbe`: query by example on a labelled collection (the classification report's retrieval check);
- :mod:`.embedder`, :mod:`.index`, :mod:`.documents`: saved representations, the dense index on disk, input tables.

Imports run one way (documents, dense, lexical -> qbe -> dual_encoder -> embedder -> index): no circles.
"""
from reprotext.retrieval.dense import FAISS_MIN_DOCS, DenseIndex, encode, mean_pool, unit
from reprotext.retrieval.documents import SNIPPET_CHARS, read_documents, snippet
from reprotext.retrieval.embedder import Embedder, load_embedder
from reprotext.retrieval.index import (INDEX_DOCS, INDEX_META, INDEX_VECTORS, SavedIndex, build_index, check_model,
                                       load_index, search)
from reprotext.retrieval.lexical import BM25Scorer, TfidfScorer
from reprotext.retrieval.qbe import (BASELINES, K_MAP, K_PRECISION, K_RECALL, LEARNED, NAMES, PR_CUTOFFS, TASKS,
                                     RankingEvaluation, evaluate_collection, evaluate_scorer, flat_metrics,
                                     ranking_metrics, recall_ceiling, report_lines, save_pr_plot)

__all__ = [
    "BASELINES", "BM25Scorer", "DenseIndex", "Embedder", "FAISS_MIN_DOCS", "INDEX_DOCS", "INDEX_META", "INDEX_VECTORS",
    "K_MAP", "K_PRECISION", "K_RECALL", "LEARNED", "NAMES", "PR_CUTOFFS", "RankingEvaluation", "SNIPPET_CHARS",
    "SavedIndex", "TASKS", "TfidfScorer", "build_index", "check_model", "encode", "evaluate_collection",
    "evaluate_scorer", "flat_metrics", "load_embedder", "load_index", "mean_pool", "ranking_metrics", "read_documents",
    "recall_ceiling", "report_lines", "save_pr_plot", "search", "snippet", "unit",
]
