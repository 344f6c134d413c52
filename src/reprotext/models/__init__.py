"""Encoders and the classifier around them (plain nn.Modules, no Lightning)."""
from reprotext.models.bag import BagEncoder
from reprotext.models.classifier import (ENCODERS, Classifier, ModelConfig, copy_statistics, encoder_statistics,
                                         load_model, load_statistics, make_head, save_model)
from reprotext.models.cnn import CNNEncoder
from reprotext.models.dropconnect import DropConnectLinear
from reprotext.models.ensemble import EnsembleEncoder, EnsembleHead, combine, member_cross_entropy
from reprotext.models.ffnn import FFNNEncoder
from reprotext.models.head import Head
from reprotext.models.rnn import RNNEncoder
from reprotext.models.transformer import TransformerEncoder

__all__ = ["BagEncoder", "CNNEncoder", "DropConnectLinear", "ENCODERS", "EnsembleEncoder", "EnsembleHead",
           "FFNNEncoder", "RNNEncoder", "Classifier", "Head", "ModelConfig", "TransformerEncoder", "combine",
           "copy_statistics", "encoder_statistics", "load_model", "load_statistics", "make_head",
           "member_cross_entropy", "save_model"]
