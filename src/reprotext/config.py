"""params.yaml -> one typed, validated config per stage.

Every stage reads only its own section but validates them all, so a bad value anywhere stops the
first stage that runs. Unknown keys are errors (a typo must not silently fall back to a default),
and every value is range-checked here, before any work starts.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from reprotext.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrepareConfig(_Section):
    """Where the data comes from and how its text is normalised."""

    source: str = "builtin:20newsgroups"
    target: str = "builtin:reuters-r8"
    # Unlabeled text for tokenizer/embeddings: a .txt (one document per line) or a table's text_column.
    unlabeled: str | None = None
    # Column names in a user's file (builtin corpora have fixed columns and their official split).
    text_column: str = "text"
    label_column: str = "label"
    split_column: str | None = None
    group_column: str | None = None
    encoding: str = "utf-8"
    unicode_form: Literal["NFC", "NFKC"] = "NFC"
    lowercase: bool = False
    min_chars: int = Field(1, ge=1)
    # Take at most this many documents per dataset (stratified, seeded): quick trials.
    max_docs: int | None = Field(None, ge=2)
    seed: int = 0

    @model_validator(mode="after")
    def _encoding_is_known(self) -> "PrepareConfig":
        import codecs

        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"prepare.encoding {self.encoding!r} is not a known text encoding; "
                             "use a Python codec name such as utf-8, latin-1 or cp1252") from None
        return self


class SplitConfig(_Section):
    """Seeded train/dev/test split: stratified over all documents, or the dataset's own split."""

    # predefined: keep the prepared split column; dev is carved from train at dev / (train + dev).
    method: Literal["stratified", "predefined"] = "stratified"
    train: float = Field(0.7, gt=0, lt=1)
    dev: float = Field(0.2, gt=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)
    seed: int = 42

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> "SplitConfig":
        total = self.train + self.dev + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"split ratios train+dev+test must sum to 1, got {self.train}+{self.dev}+{self.test}={total:g}; "
                "adjust split.train, split.dev and split.test"
            )
        return self


class TokenizeConfig(_Section):
    """sentencepiece subword model."""

    model_type: Literal["bpe", "unigram", "word"] = "bpe"  # word: whole words, the rest <unk> (or bytes)
    vocab_size: int = Field(16000, ge=64)
    character_coverage: float = Field(1.0, gt=0, le=1)
    byte_fallback: bool = True
    # Documents are cut into chunks of at most this many bytes for training, so
    # no long document is silently skipped by sentencepiece.
    max_sentence_length: int = Field(4096, ge=64)
    # At most this many training chunks are sampled (seeded) for training.
    input_sentence_size: int = Field(200_000, ge=100)
    # Pieces never split, at ids 6, 7, ... after the fixed specials (pad, unk, bos, eos, [CLS], [MASK]).
    extra_symbols: tuple[str, ...] = ()
    seed: int = 0
    threads: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _extra_symbols_are_new_pieces(self) -> "TokenizeConfig":
        taken = {"<pad>", "<unk>", "<s>", "</s>", "[CLS]", "[MASK]"}
        for symbol in self.extra_symbols:
            if not symbol or any(c.isspace() for c in symbol):
                raise ValueError(f"extra symbol {symbol!r} is empty or holds whitespace; use one word such as [SEP]")
            if symbol in taken:
                raise ValueError(f"extra symbol {symbol!r} is already a special piece or listed twice; remove it")
            taken.add(symbol)
        return self

    @model_validator(mode="after")
    def _vocab_holds_the_fixed_pieces(self) -> "TokenizeConfig":
        # 6 special pieces, the extra symbols, and the 256 byte pieces when byte fallback is on.
        extra = len(self.extra_symbols)
        fixed = 6 + extra + (256 if self.byte_fallback else 0)
        if self.vocab_size <= fixed:
            raise ValueError(f"vocab_size must exceed the {fixed} fixed pieces (6 specials"
                             f"{f' + {extra} extra symbols' if extra else ''}"
                             f"{' + 256 bytes for byte_fallback' if self.byte_fallback else ''}); raise it")
        return self


class EmbedConfig(_Section):
    """word2vec over BPE pieces (gensim)."""

    algorithm: Literal["skipgram", "cbow"] = "skipgram"
    dim: int = Field(100, ge=2)
    window: int = Field(5, ge=1)
    negative: int = Field(5, ge=1)
    epochs: int = Field(5, ge=1)
    min_count: int = Field(2, ge=1)
    sample: float = Field(1e-3, ge=0)
    workers: int = Field(1, ge=1)
    seed: int = 0
    # Words whose nearest pieces the report lists (a word's vector is the mean of its pieces' vectors).
    probes: tuple[str, ...] = ("god", "car", "space", "computer", "oil", "game", "bank", "windows")


class PretrainConfig(_Section):
    """The chosen encoder (train.model) as a self-supervised language model on the training + unlabeled text.

    transformer: masked LM (Devlin et al. 2019); rnn: causal LM, forward (+ backward when bidirectional);
    ffnn: Bengio et al. 2003's next piece from the previous ``context``; cnn and bag: word2vec is their
    pretraining (the stage writes a marker). An "epoch" is ``max_tokens / epochs`` training tokens of a seeded
    shuffled stream of ``seq_len``-piece sequences, so the budget, not the corpus size, sets the cost.
    """

    max_tokens: int = Field(1_200_000, ge=1)  # training tokens over the whole run
    epochs: int = Field(4, ge=1)  # dev perplexity after each max_tokens / epochs tokens
    seq_len: int = Field(128, ge=2, le=512)
    batch_size: int = Field(16, ge=1)  # sequences per step
    dev_tokens: int = Field(20_000, ge=2)  # of the dev splits, scored for perplexity only (test text never)
    mask_rate: float = Field(0.15, gt=0, lt=1)  # masked LM: share of pieces predicted
    mask_token: float = Field(0.8, ge=0, le=1)  # of those: replaced by [MASK] ...
    random_token: float = Field(0.1, ge=0, le=1)  # ... by a random piece; the rest are kept as they are
    context: int = Field(8, ge=1)  # ffnn: the previous n pieces
    lm_hidden: int = Field(256, ge=1)  # ffnn: the LM's hidden tanh layer over the n projected pieces
    negatives: int = Field(1024, ge=0)  # rnn/ffnn sampled softmax (Jean et al. 2015); 0 = full softmax
    lr: float = Field(2e-3, gt=0)
    warmup: float = Field(0.05, ge=0, lt=1)  # share of the steps; then cosine decay to 10%
    weight_decay: float = Field(0.01, ge=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0)
    accelerator: Literal["cpu", "gpu", "auto"] = "cpu"
    precision: Literal["32-true", "bf16-mixed"] = "32-true"
    threads: int = Field(1, ge=0)  # torch CPU threads; 0 = torch's default
    seed: int = 0

    @model_validator(mode="after")
    def _mask_split(self) -> "PretrainConfig":
        if self.mask_token + self.random_token > 1 + 1e-9:
            raise ValueError(f"mask_token {self.mask_token} + random_token {self.random_token} exceed 1; "
                             "the rest (kept pieces) would be negative: lower pretrain.mask_token or random_token")
        if self.max_tokens < self.epochs * self.seq_len:
            raise ValueError(f"max_tokens {self.max_tokens} is less than one sequence of {self.seq_len} per epoch "
                             f"over {self.epochs} epochs; raise pretrain.max_tokens")
        return self


class BagOptions(_Section):
    """train.bag: fastText-style bag of piece and hashed n-gram embeddings (models/bag.py)."""

    pooling: Literal["mean", "max", "tfidf", "attention"] = "tfidf"
    piece_ngrams: int = Field(1, ge=1, le=8)  # longest piece n-gram (1 = the pieces alone)
    word_ngrams: int = Field(2, ge=0, le=8)  # longest word n-gram (0 = none, 1 = words, 2 = + word bigrams)
    buckets: int = Field(262_144, ge=0)  # hash table of the n-gram features (min_count 0)
    min_count: int = Field(2, ge=0)  # >= 1: one row per n-gram in at least this many training documents, no hashing
    sparse: bool = True  # sparse gradients for the tables (SparseAdam / SGD): a step touches only the batch's rows
    nb_weights: bool = True  # tfidf pooling's weights x each feature's Naive Bayes log-count ratio (training labels)

    @model_validator(mode="after")
    def _hashable(self) -> "BagOptions":
        if (self.piece_ngrams > 1 or self.word_ngrams > 0) and self.buckets < 1 and self.min_count < 1:
            raise ValueError(f"piece_ngrams {self.piece_ngrams} / word_ngrams {self.word_ngrams} need "
                             "train.bag.buckets > 0 to hash the n-grams into, or train.bag.min_count >= 1")
        return self


class FFNNOptions(_Section):
    """train.ffnn: Bengio-style feed-forward network over the first ``window`` pieces."""

    window: int = Field(256, ge=1)
    proj_dim: int = Field(64, ge=1)  # each position's shared projection, concatenated: window * proj_dim inputs
    hidden: tuple[int, ...] = (256,)


class CNNOptions(_Section):
    """train.cnn: Kim-style convolutions with max-over-time pooling."""

    widths: tuple[int, ...] = Field((3, 4, 5), min_length=1)
    filters: int = Field(100, ge=1)  # per width


class RNNOptions(_Section):
    """train.rnn: a (bidirectional) LSTM or GRU."""

    cell: Literal["lstm", "gru"] = "lstm"
    hidden_size: int = Field(128, ge=1)
    layers: int = Field(1, ge=1)
    bidirectional: bool = True
    pooling: Literal["max", "mean", "last"] = "max"


class TransformerOptions(_Section):
    """train.transformer: pre-LN self-attention blocks over at most 512 positions."""

    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)  # must divide embed.dim
    ff_dim: int = Field(256, ge=1)
    pooling: Literal["cls", "mean"] = "cls"
    max_positions: int = Field(512, ge=1, le=512)


class EnsembleOptions(_Section):
    """train.ensemble: ``copies`` members of each encoder in ``members`` (each with its own options section),
    each under its own head, their predicted distributions averaged."""

    members: tuple[Literal["bag", "cnn"], ...] = Field(("bag", "cnn"), min_length=1)
    copies: int = Field(5, ge=1)  # members of each kind; they differ by their random weights and dropout masks

    @model_validator(mode="after")
    def _enough(self) -> "EnsembleOptions":
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"ensemble members {list(self.members)} repeat an encoder; list each once "
                             "(train.ensemble.copies sets how many of each)")
        if len(self.members) * self.copies < 2:
            raise ValueError(f"an ensemble of {len(self.members) * self.copies} member is one model; "
                             "raise train.ensemble.copies or list more members")
        return self


class TrainConfig(_Section):
    """The source-task classifier: encoder, head, regularisation, optimisation, early stopping, devices."""

    model: Literal["bag", "ffnn", "cnn", "rnn", "transformer", "ensemble"] = "bag"
    embeddings: Literal["pretrained", "random"] = "pretrained"
    # lm: every encoder weight from the pretrain stage (whose embeddings began as word2vec; for bag and cnn
    # word2vec is their pretraining, so lm = the word2vec vectors); embeddings: as train.embeddings says.
    init: Literal["lm", "embeddings"] = "embeddings"
    freeze_embeddings: bool = False
    max_len: int = Field(1024, ge=1)
    bag: BagOptions = BagOptions()
    ffnn: FFNNOptions = FFNNOptions()
    cnn: CNNOptions = CNNOptions()
    rnn: RNNOptions = RNNOptions()
    transformer: TransformerOptions = TransformerOptions()
    ensemble: EnsembleOptions = EnsembleOptions()
    hidden_dim: int = Field(0, ge=0)
    dropout: float = Field(0.5, ge=0, lt=1)
    dropconnect: float = Field(0.0, ge=0, lt=1)
    batch_norm: bool = False
    l1: float = Field(0.0, ge=0)
    l2: float = Field(0.0, ge=0)
    grad_clip: float = Field(0.0, ge=0)
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(3e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup: float = Field(0.0, ge=0, lt=1)
    gd_mode: Literal["minibatch", "sgd", "full"] = "minibatch"
    batch_size: int = Field(32, ge=1)
    max_epochs: int = Field(30, ge=1)
    monitor: Literal["dev/loss", "dev/accuracy"] = "dev/loss"
    mode: Literal["min", "max"] = "min"
    patience: int = Field(3, ge=0)
    min_delta: float = Field(0.0, ge=0)
    # After early stopping has chosen the epochs on dev: a fresh model, the same seed, trained on train + dev for
    # that many epochs is the one saved (dev's scores stay those of the first fit, which never saw it).
    refit: bool = True
    accelerator: str = "cpu"
    devices: int | Literal["auto"] | list[int] = 1
    strategy: str = "auto"
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true", "64-true"] = "32-true"
    num_nodes: int = Field(1, ge=1)
    deterministic: bool | Literal["warn"] = True
    threads: int = Field(1, ge=0)  # torch CPU threads per process; 0 = torch's default (all cores)
    seed: int = 42

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        better = "min" if self.monitor == "dev/loss" else "max"
        if self.mode != better:
            raise ValueError(f"monitor {self.monitor} improves when it goes {'down' if better == 'min' else 'up'}; "
                             f"set train.mode: {better}")
        if self.model == "transformer" and self.max_len > self.transformer.max_positions:
            raise ValueError(f"max_len {self.max_len} exceeds the transformer's {self.transformer.max_positions} "
                             "positions; lower train.max_len")
        if isinstance(self.devices, int) and self.devices < 1:
            raise ValueError(f"devices {self.devices} must be >= 1, 'auto' or a list of device indices; "
                             "fix train.devices")
        if "bag" in self.encoders() and self.bag.sparse and self.grad_clip:
            raise ValueError("train.grad_clip needs dense gradients, and train.bag.sparse makes the tables' sparse; "
                             "set train.grad_clip: 0 or train.bag.sparse: false")
        if self.batch_norm and (self.gd_mode == "sgd" or self.batch_size == 1):
            raise ValueError("batch norm needs batches of more than one example; "
                             "set train.batch_norm: false or use gd_mode minibatch/full with batch_size > 1")
        return self

    def encoders(self) -> tuple[str, ...]:
        """The encoder types the model is made of: ``model`` itself, or an ensemble's members."""
        return self.ensemble.members if self.model == "ensemble" else (self.model,)

    def encoder_options(self) -> dict:
        """The chosen encoder's own options as JSON values (stored in the model config)."""
        if self.model == "ensemble":
            return {"members": {m: getattr(self, m).model_dump(mode="json") for m in self.ensemble.members},
                    "copies": self.ensemble.copies}
        return getattr(self, self.model).model_dump(mode="json")


class DualEncoderOptions(_Section):
    """finetune.dual_encoder: the trained encoder fine-tuned for retrieval (DSSM-style, in-batch negatives)."""

    enabled: bool = True
    # Where training starts: the train stage's encoder, or the fine-tuned classifier's (contrastive on top of it).
    init: Literal["pretrained", "finetuned"] = "finetuned"
    # null: pairs of training documents with the same label; else a .csv/.tsv/.parquet/.jsonl of (query, document)
    # text pairs in the two columns below (DVC does not track this file: add it to the finetune stage's deps).
    pairs_file: str | None = None
    query_column: str = "query"
    document_column: str = "document"
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=2)  # B pairs: each query's negatives are the other B - 1 documents
    lr: float = Field(3e-3, gt=0)
    temperature: float = Field(0.05, gt=0)  # the softmax's, over cosines
    seed: int = 42


class FinetuneConfig(_Section):
    """The target task: the trained encoder under a new head, against from-scratch runs; few-shot and zero-shot."""

    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-2, gt=0)  # the head's; the encoder gets lr * encoder_lr_factor
    weight_decay: float = Field(0.0, ge=0)
    dropout: float = Field(0.5, ge=0, lt=1)
    max_epochs: int = Field(30, ge=1)
    patience: int = Field(3, ge=0)
    seed: int = 42
    threads: int = Field(1, ge=0)  # torch CPU threads; 0 = torch's default (all cores)
    workers: int = Field(2, ge=1)  # processes for the study's fits (scratch, few-shot), each `threads` threads
    warmup_epochs: int = Field(1, ge=0)  # head-only epochs before the encoder starts to thaw
    unfreeze_every: int = Field(1, ge=1)  # epochs between thawing one more encoder layer group (top first)
    encoder_lr_factor: float = Field(0.3, gt=0, le=10)
    # From-scratch comparisons (same architecture, recipe and budget): "train_init" starts from the
    # embeddings the train stage started from (word2vec or random), "random" from random embeddings.
    scratch: tuple[Literal["train_init", "random"], ...] = ("train_init", "random")
    fewshot_k: tuple[int, ...] = (1, 5, 10, 25)  # examples per class; the full-data runs are the "all" point
    fewshot_seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1)
    fewshot_batch_size: int = Field(16, ge=1)
    fewshot_lr: float | None = Field(None, gt=0)  # None: lr; k examples per class take few steps, a larger LR helps
    fewshot_max_epochs: int | None = Field(None, ge=1)  # None: max_epochs (the same epoch budget)
    fewshot_patience: int | None = Field(None, ge=0)  # None: patience
    # label -> words describing it for zero-shot; unlisted labels use their name split into words.
    zeroshot_descriptions: dict[str, str] = {}
    zeroshot_center: bool = False  # centre vectors on the documents' mean before the cosine
    dual_encoder: DualEncoderOptions = DualEncoderOptions()

    @model_validator(mode="after")
    def _fewshot_k_positive(self) -> "FinetuneConfig":
        bad = [k for k in self.fewshot_k if k < 1]
        if bad:
            raise ValueError(f"fewshot_k {bad[0]} must be >= 1 example per class; fix finetune.fewshot_k")
        return self


class ExtraTaskOptions(_Section):
    """multitask.extra_tasks[]: a further labelled dataset trained alongside the source and target tasks.

    It is read, normalised and deduplicated as prepare reads a file (prepare's encoding, unicode_form, lowercase,
    min_chars, max_docs and seed), split as split.train/dev/test say (stratified, split.seed), and its test
    split is scored by the evaluate stage.
    """

    name: str  # names the task's head, metrics (dev/<name>/accuracy) and files: letters, digits, _ and -
    path: str  # a .csv/.tsv/.parquet/.jsonl file (DVC does not track it: add it to the multitask stage's deps)
    text_column: str = "text"
    label_column: str = "label"

    @model_validator(mode="after")
    def _name_is_usable(self) -> "ExtraTaskOptions":
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", self.name):
            raise ValueError(f"extra task name {self.name!r} must be letters, digits, '_' or '-' "
                             "(it names metrics and files)")
        if self.name in ("source", "target", "mean"):
            raise ValueError(f"extra task name {self.name!r} is reserved; choose another")
        return self


class MultitaskConfig(_Section):
    """One encoder, one head per task (source, target and any extra tasks), trained together; compared on the
    target task with the single-task model and with sequential transfer (the finetune stage)."""

    enabled: bool = True  # false: the stage writes a marker, the report leaves the comparison out
    extra_tasks: tuple[ExtraTaskOptions, ...] = ()
    # Which task the next batch comes from (Arivazhagan et al. 2019): proportional to N_t, or to N_t^(1/T).
    sampling: Literal["proportional", "temperature"] = "temperature"
    temperature: float = Field(5.0, ge=1)  # sampling temperature only: 1 = proportional, larger = closer to uniform
    steps_per_epoch: int | None = Field(150, ge=1)  # None: all tasks' training documents / batch_size
    # Early stopping on the tasks' mean dev score or one task's (source, target or an extra task's name).
    stop_on: str = "mean"
    monitor: Literal["loss", "accuracy"] = "loss"
    # Dev documents per task scored after every epoch (a seeded sample; the target's early-stopping half is kept
    # whole); the reported dev scores use the whole dev split. None: all.
    epoch_dev_docs: int | None = Field(1000, ge=1)
    patience: int = Field(2, ge=0)
    max_epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(1e-2, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    dropout: float = Field(0.5, ge=0, lt=1)
    # The single-task baseline: the same loop, recipe and init on the target task alone.
    single_task: bool = True
    # Few-shot: the target task at k examples per class (finetune's draw for a seed), with all of the others.
    fewshot_k: tuple[int, ...] = (5,)
    fewshot_seeds: tuple[int, ...] = (0,)
    fewshot_steps_per_epoch: int | None = Field(None, ge=1)  # None: as steps_per_epoch
    # The few-shot runs' early stopping (mean, source, target or an extra task): on the few-shot task by default,
    # since the tasks with all their data would keep a run going long after the few-shot head has stopped learning.
    fewshot_stop_on: str = "target"
    # Seeds the sampler and the heads; also the halving of the target dev split, which must match finetune.seed
    # for the dev scores to come from the same documents as finetune's.
    seed: int = 42
    accelerator: Literal["cpu", "gpu", "auto"] = "cpu"
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "32-true"
    threads: int = Field(1, ge=0)  # torch CPU threads; 0 = torch's default (all cores)
    # Processes for the comparison runs (single-task, few-shot) alongside the multitask fit, each `threads` threads.
    workers: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _tasks_consistent(self) -> "MultitaskConfig":
        names = [t.name for t in self.extra_tasks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"extra task {twice[0]!r} is listed twice; give each extra task its own name")
        known = ["mean", "source", "target", *names]
        for key in ("stop_on", "fewshot_stop_on"):
            if getattr(self, key) not in known:
                raise ValueError(f"{key} {getattr(self, key)!r} must be one of {', '.join(known)}; "
                                 f"fix multitask.{key}")
        bad = [k for k in self.fewshot_k if k < 1]
        if bad:
            raise ValueError(f"fewshot_k {bad[0]} must be >= 1 example per class; fix multitask.fewshot_k")
        if self.fewshot_k and not self.fewshot_seeds:
            raise ValueError("fewshot_k needs at least one seed in multitask.fewshot_seeds (or set fewshot_k: [])")
        return self


class EvaluateConfig(_Section):
    """Test-set evaluation, calibration and baselines."""

    batch_size: int = Field(128, ge=1)
    calibration_bins: int = Field(15, ge=2)
    tfidf_max_features: int = Field(50000, ge=10)  # the TF-IDF + logistic regression baseline
    tfidf_c: float = Field(10.0, gt=0)
    # Query-by-example retrieval: test documents query the training documents (relevant: the same label).
    retrieval: bool = True
    retrieval_center: bool = True  # centre dense vectors on the collection's mean before the cosine
    retrieval_bm25_k1: float = Field(1.5, ge=0)
    retrieval_bm25_b: float = Field(0.75, ge=0, le=1)
    seed: int = 0


SECTIONS: dict[str, type[_Section]] = {
    "prepare": PrepareConfig,
    "split": SplitConfig,
    "tokenize": TokenizeConfig,
    "embed": EmbedConfig,
    "pretrain": PretrainConfig,
    "train": TrainConfig,
    "finetune": FinetuneConfig,
    "multitask": MultitaskConfig,
    "evaluate": EvaluateConfig,
}


# ---------------------------------------------------------------- the retrieval pipeline (retrieval/params.yaml)

class CollectionConfig(_Section):
    """A test collection in the BEIR layout and the dev queries carved out of its training queries."""

    data: str = "data/retrieval/beir"  # a folder with corpus.jsonl, queries.jsonl, qrels/{train,dev,test}.tsv
    dev_fraction: float = Field(0.2, gt=0, lt=1)  # of the training queries, when there is no qrels/dev.tsv
    lowercase: bool = True  # the text the subword tokenizer and the dual encoder read (BM25 lowercases anyway)
    seed: int = 0


class BM25Config(_Section):
    """Okapi BM25 (bm25s, Lucene variant) over the corpus."""

    k1: float = Field(1.5, ge=0)
    b: float = Field(0.75, ge=0, le=1)
    stopwords: Literal["english"] | None = "english"
    stemmer: str | None = "english"  # a Snowball language of PyStemmer, or null
    depth: int = Field(1000, ge=10)  # documents ranked per query in the runs it writes


class DSSMConfig(_Section):
    """The DSSM-style dual encoder (one shared tower over piece embeddings) and its training pairs."""

    pooling: Literal["mean", "max"] = "mean"
    max_len: int = Field(512, ge=8)
    judged_pairs: bool = True  # (training query, relevant document) pairs from qrels/train.tsv
    title_pairs: bool = True  # a document's title queries its abstract (documents with a title)
    ict_pairs: bool = True  # the inverse cloze task (Lee et al. 2019): a span of a document queries the rest
    ict_span: int = Field(24, ge=2)  # pieces in an inverse-cloze query
    ict_keep: float = Field(0.1, ge=0, le=1)  # how often the span stays in its document (Lee et al.: 0.1)
    judged_repeat: int = Field(4, ge=1)  # each judged pair appears this often per epoch (there are few of them)
    hard_negatives: bool = True  # each judged pair also ranks BM25's best non-relevant document below its own
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    temperature: float = Field(0.05, gt=0)
    seed: int = 0


class HybridConfig(_Section):
    """Dense + BM25 fusion, its method and weight chosen on the dev queries; the test metrics of all three."""

    methods: tuple[Literal["rrf", "convex"], ...] = ("rrf", "convex")  # candidates; dev picks one
    # Weight of the dense side: RRF score w / (k + rank_dense) + (1 - w) / (k + rank_bm25); convex: w * dense +
    # (1 - w) * bm25 after min-max normalising each over its top ``depth`` documents.
    weights: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    rrf_k: int = Field(60, ge=1)
    depth: int = Field(1000, ge=10)  # documents of each list that take part in the fusion

    @model_validator(mode="after")
    def _weights_in_range(self) -> "HybridConfig":
        if not self.weights or any(not 0.0 <= w <= 1.0 for w in self.weights):
            raise ValueError(f"weights {list(self.weights)} must be non-empty and within [0, 1]")
        if not self.methods:
            raise ValueError("methods must name at least one of rrf, convex")
        return self


RETRIEVAL_SECTIONS: dict[str, type[_Section]] = {
    "collection": CollectionConfig,
    "vocab": TokenizeConfig,
    "word2vec": EmbedConfig,
    "bm25": BM25Config,
    "dssm": DSSMConfig,
    "hybrid": HybridConfig,
}

S = TypeVar("S", bound=_Section)


def read_params(path: str | Path = "params.yaml", sections: dict[str, type[_Section]] | None = None) -> dict:
    """Read params.yaml as a dict, with a clear error when it is missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found; run from the repository root or pass --params")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from exc
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of stage sections, got {type(params).__name__}")
    sections = SECTIONS if sections is None else sections
    unknown = sorted(set(params) - set(sections))
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r}{_did_you_mean(unknown[0], sections)}")
    return params


def parse_section(name: str, values: dict | None, where: str = "params.yaml",
                  sections: dict[str, type[_Section]] | None = None) -> _Section:
    """Validate one section's values into its typed config."""
    cls = (SECTIONS if sections is None else sections)[name]
    try:
        return cls.model_validate(values or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in (name, *err["loc"]))
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            fields = _fields_at(cls, err["loc"][:-1])  # a nested section (train.bag.*) has its own keys
            hint = _did_you_mean(key, fields)
            raise ConfigError(f"{where}: unknown key {loc!r}{hint or '; valid keys: ' + ', '.join(fields)}") from exc
        msg = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a whole-section check (e.g. ratios that must sum to 1): the message says it all
            raise ConfigError(f"{where}: {name}: {msg}") from exc
        raise ConfigError(f"{where}: {loc} = {err.get('input')!r}: {msg}") from exc


def parse_all(params: dict, where: str = "params.yaml",
              sections: dict[str, type[_Section]] | None = None) -> dict[str, _Section]:
    """Validate every section of ``params`` (in pipeline order), so a bad value anywhere stops the first stage."""
    sections = SECTIONS if sections is None else sections
    return {name: parse_section(name, params.get(name), where, sections=sections) for name in sections}


def load_section(name: str, cls: type[S], path: str | Path = "params.yaml",
                 sections: dict[str, type[_Section]] | None = None) -> S:
    """Load one stage's section of params.yaml (or of another pipeline's params, ``sections``), after validating
    the whole file.

    Every section is checked, not only ``name``'s: a bad ``train.dropout`` stops the first stage that runs,
    in seconds, rather than the train stage after prepare..embed did their work. What a stage *reads* (and so
    what DVC re-runs it for) is still its own section only.
    """
    config = parse_all(read_params(path, sections), where=str(path), sections=sections)[name]
    assert isinstance(config, cls)
    return config


def _fields_at(cls: type[BaseModel], loc: tuple) -> list[str]:
    """The keys valid at ``loc`` inside ``cls`` (the sub-model's own fields for a nested section)."""
    for part in loc:
        annotation = cls.model_fields[str(part)].annotation if str(part) in cls.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        cls = annotation
    return list(cls.model_fields)


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
