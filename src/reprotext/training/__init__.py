"""Lightning training: data, module, callbacks, fit."""
from reprotext.training.data import EpochShuffleSampler, TextDataModule, TokenDataset, collate, encode_labels
from reprotext.training.fit import FitResult, fit, seed_everything
from reprotext.training.module import ClassifierModule
from reprotext.training.settings import FitSettings

__all__ = ["EpochShuffleSampler", "TextDataModule", "TokenDataset", "collate", "encode_labels", "FitResult",
           "FitSettings", "fit", "seed_everything", "ClassifierModule"]
