"""Encoders and the classifier around them (plain nn.Modules, no Lightning)."""
from reprotext.models.bag import BagEncoder
from reprotext.models.classifier import (ENCODERS, Classifier, Head, ModelConfig, copy_statistics,
                                         encoder_statistics, load_model, load_statistics, save_model)
from reprotext.models.cnn import CNNEncoder
from reprotext.models.dropconnect import DropConnectLinear
from reprotext.models.ffnn import FFNNEncoder
from reprotext.models.rnn import RNNEncoder
from reprotext.models.transformer import TransformerEncoder

__all__ = ["BagEncoder", "CNNEncoder", "DropConnectLinear", "ENCODERS", "FFNNEncoder", "RNNEncoder", "Classifier",
           "Head", "ModelConfig", "TransformerEncoder", "copy_statistics", "encoder_statistics", "load_model",
           "load_statistics", "save_model"]
