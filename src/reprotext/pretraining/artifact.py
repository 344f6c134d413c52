"""Building the LM for ``train.model``, saving what the classifier takes over, and loading it into a classifier.

models/pretrain/ holds meta.json (format version, tokenizer sha256, the encoder's name and options, the objective,
the history) and, for an encoder with an LM objective, encoder.pt (the transferable weights). For bag and cnn it
holds only meta.json with objective ``word2vec``: a marker the train stage reads as "start from the word2vec
vectors". Why word2vec is their pretraining: CBOW predicts a piece from the sum of its context pieces' vectors
and skip-gram a context piece from a piece's vector (Mikolov et al. 2013), a log-bilinear language model whose
only parameters are the piece vectors. A bag encoder is exactly such a sum (or weighted mean) of piece vectors
with nothing between the table and the head, so word2vec already trains every weight it has as a language
model over the same pieces. A Kim CNN adds only window filters over those vectors; a window-filter LM (predict
a piece from a convolved window around it) is CBOW with position-dependent weights (Ling et al. 2015's CWindow),
whose gain over CBOW in their study is small next to what it costs here, so its filters start random, as before.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from reprotext.artifacts import ArtifactKind, check_tokenizer, read_artifact_meta, read_state, save_artifact
from reprotext.config import PretrainConfig
from reprotext.errors import ArtifactError, ConfigError
from reprotext.models import ENCODERS, Classifier, ModelConfig
from reprotext.pretraining.lm import CausalRNNLM, LanguageModel, MaskedLM, NextPieceLM
from reprotext.tokenizer import PAD

META_FILE, WEIGHTS_FILE = "meta.json", "encoder.pt"
WORD2VEC = "word2vec"
# encoders whose pretraining is the embed stage's word2vec (see above); an ensemble's members are among them
WORD2VEC_PRETRAINED = ("bag", "cnn", "ensemble")
PRETRAINED = ArtifactKind("pretrain", WEIGHTS_FILE, META_FILE, fix="rerun `dvc repro pretrain`",
                          made="encoder was pretrained", tokenizer_key=("tokenizer_sha256",))
OBJECTIVES = {"transformer": "masked_lm", "rnn": "causal_lm", "ffnn": "next_piece", "bag": WORD2VEC,
              "cnn": WORD2VEC, "ensemble": WORD2VEC}


def build_language_model(model: str, encoder_options: dict, vectors: np.ndarray, cfg: PretrainConfig) -> LanguageModel:
    """The ``model`` encoder (its options as in train.<model>) under its LM head, embeddings from ``vectors``."""
    if model in WORD2VEC_PRETRAINED or model not in ENCODERS:
        raise ConfigError(f"no language-model objective for train.model {model!r}: "
                          f"{', '.join(WORD2VEC_PRETRAINED)} take word2vec as their pretraining")
    vocab, dim = vectors.shape
    embedding = nn.Embedding(vocab, dim, padding_idx=PAD)
    embedding.weight.data.copy_(torch.from_numpy(vectors))
    config = ModelConfig(model=model, vocab_size=vocab, embedding_dim=dim, labels=("_",), dropout=cfg.dropout,
                         encoder=dict(encoder_options))
    try:
        encoder = ENCODERS[model](embedding, config)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{model} encoder options {encoder_options} are invalid ({exc}); fix train.{model}") from exc
    if model == "transformer":
        return MaskedLM(encoder, cfg.mask_rate, cfg.mask_token, cfg.random_token)
    if model == "rnn":
        return CausalRNNLM(encoder)
    return NextPieceLM(encoder, cfg.context, cfg.lm_hidden, cfg.dropout)


def _meta(model: str, encoder_options: dict, tokenizer_sha256: str, objective: str, info: dict) -> dict:
    return {"tokenizer_sha256": tokenizer_sha256, "model": model, "encoder": dict(encoder_options),
            "objective": objective, **info}


def save_pretrained(directory: Path, lm: LanguageModel, model: str, encoder_options: dict, tokenizer_sha256: str,
                    info: dict) -> None:
    """encoder.pt (the weights the classifier takes over) and meta.json into ``directory``."""
    weights = lm.transferable()
    emb = lm.encoder.embedding
    save_artifact(directory, PRETRAINED, weights, _meta(model, encoder_options, tokenizer_sha256, lm.objective, {
        "vocab_size": emb.num_embeddings, "embedding_dim": emb.embedding_dim, "weights": sorted(weights), **info}))


def save_marker(directory: Path, model: str, tokenizer_sha256: str) -> None:
    """meta.json only: ``model``'s pretraining is the embed stage's word2vec (nothing else to take over).

    No encoder options: none of the encoder's weights come from here, and the stage does not read them.
    """
    save_artifact(directory, PRETRAINED, None, _meta(model, {}, tokenizer_sha256, WORD2VEC, {
        "reason": "word2vec (CBOW/skip-gram) is a bag-of-context language model over the same pieces; see "
                  "reprotext.pretraining.artifact"}))


def read_meta(directory: str | Path, tokenizer_sha256: str | None = None) -> dict:
    """meta.json of a pretrain output, its format version and tokenizer checked."""
    meta = read_artifact_meta(directory, PRETRAINED)
    check_tokenizer(directory, PRETRAINED, meta, tokenizer_sha256)
    return meta


def init_from_pretrained(model: Classifier, directory: str | Path, tokenizer_sha256: str,
                         embeddings_from_word2vec: bool) -> str:
    """Copy the pretrained encoder's weights into ``model.encoder`` (exactly them; the rest keeps its init).

    ``embeddings_from_word2vec``: whether ``model`` was built with the word2vec vectors (train.embeddings
    pretrained), which is what the word2vec marker of bag and cnn asks for. Returns the objective.
    """
    meta = read_meta(directory, tokenizer_sha256)
    name, options = model.config.model, dict(model.config.encoder)
    word2vec = meta.get("objective") == WORD2VEC  # a marker: no weights, so any options of the encoder fit
    if meta.get("model") != name or (not word2vec and meta.get("encoder") != options):
        raise ArtifactError(f"{directory}: encoder was pretrained as {meta.get('model')} {meta.get('encoder')}, "
                            f"not {name} {options}; rerun `dvc repro pretrain` (it reads train.model and its options)")
    if not embeddings_from_word2vec:
        raise ConfigError("train.init lm starts from the pretrained encoder, whose embeddings began as word2vec, "
                          "but train.embeddings is random; set train.embeddings: pretrained or train.init: embeddings")
    if word2vec:
        return WORD2VEC  # the model already holds the word2vec vectors: nothing more to take over
    state = read_state(directory, PRETRAINED)
    own = model.encoder.state_dict()
    for key, value in state.items():
        if key not in own or own[key].shape != value.shape:
            raise ArtifactError(f"{directory}: pretrained weight {key} {tuple(value.shape)} does not fit the "
                                f"{name} encoder ({tuple(own[key].shape) if key in own else 'no such weight'}); "
                                "rerun `dvc repro pretrain`")
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value)
    return meta["objective"]
