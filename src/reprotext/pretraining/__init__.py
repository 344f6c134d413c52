"""Self-supervised language-model pretraining of the encoders: masked LM, causal LM, Bengio's next-piece model."""
from reprotext.pretraining.artifact import (OBJECTIVES, WORD2VEC, WORD2VEC_PRETRAINED, build_language_model,
                                            init_from_pretrained, read_meta, save_marker, save_pretrained)
from reprotext.pretraining.fit import PretrainResult, pack, pretrain
from reprotext.pretraining.lm import CausalRNNLM, LanguageModel, MaskedLM, NextPieceLM
from reprotext.pretraining.objectives import IGNORE, context_windows, mask_pieces, sampled_softmax_loss

__all__ = ["CausalRNNLM", "IGNORE", "LanguageModel", "MaskedLM", "NextPieceLM", "OBJECTIVES", "PretrainResult",
           "WORD2VEC", "WORD2VEC_PRETRAINED", "build_language_model", "context_windows", "init_from_pretrained",
           "mask_pieces", "pack", "pretrain", "read_meta", "sampled_softmax_loss", "save_marker", "save_pretrained"]
