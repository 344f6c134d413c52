import numpy as np
import pytest

from reprotext.evaluation import classification_metrics, predict_proba, save_confusion
from reprotext.models import Classifier, ModelConfig


def test_metrics_by_hand():
    m = classification_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert m["accuracy"] == pytest.approx(0.75)
    # F1(a) = 2*1*0.5/1.5 = 2/3, F1(b) = 2*(2/3)*1/(5/3) = 0.8
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_predict_proba_rows_sum_to_one(tokenizer):
    model = Classifier(ModelConfig("bag", tokenizer.vocab_size, 8, ("a", "b", "c"), max_len=5))
    proba = predict_proba(model, tokenizer, ["rocket orbit", "", "engine " * 50], batch_size=2)
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)


def test_confusion_png_is_written(tmp_path):
    png = tmp_path / "cm.png"
    save_confusion(["a", "b", "b"], ["a", "a", "b"], ["a", "b"], png, "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
