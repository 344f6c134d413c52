"""Lightning training: data, module, callbacks, fit."""
from reprotext.training.data import TextDataModule, TokenDataset, collate, encode_labels
from reprotext.training.fit import FitResult, FitSettings, fit, seed_everything
from reprotext.training.module import ClassifierModule

__all__ = ["TextDataModule", "TokenDataset", "collate", "encode_labels", "FitResult", "FitSettings", "fit", "seed_everything",
           "ClassifierModule"]
