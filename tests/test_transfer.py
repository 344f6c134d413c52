import torch

from reprotext.models import Classifier, ModelConfig
from reprotext.transfer import swap_head


def test_swap_head_keeps_the_encoder_and_resizes_the_head():
    pretrained = Classifier(ModelConfig("bag", 30, 6, ("a", "b", "c", "d"), tokenizer_sha256="t"))
    with torch.no_grad():
        pretrained.encoder.embedding.weight.add_(1.0)  # make the trained weights recognisable
    model = swap_head(pretrained, ["x", "y"], dropout=0.1)
    torch.testing.assert_close(model.encoder.embedding.weight, pretrained.encoder.embedding.weight)
    assert model.encoder.embedding.weight.data_ptr() != pretrained.encoder.embedding.weight.data_ptr()
    assert model.config.labels == ("x", "y") and model.config.tokenizer_sha256 == "t"
    assert model(torch.tensor([[1, 2]])).shape == (1, 2)
