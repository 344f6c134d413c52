"""Encoders and the classifier around them (plain nn.Modules, no Lightning)."""
from reprotext.models.bag import BagEncoder
from reprotext.models.classifier import ENCODERS, Classifier, Head, ModelConfig, load_model, save_model

__all__ = ["BagEncoder", "ENCODERS", "Classifier", "Head", "ModelConfig", "load_model", "save_model"]
