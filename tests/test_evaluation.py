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


def test_ece_by_hand_and_zero_when_calibrated():
    from reprotext.evaluation import expected_calibration_error, reliability_table

    proba = np.array([[0.9, 0.1], [0.6, 0.4]])
    # bin of 0.9: accuracy 1 -> |1 - 0.9|; bin of 0.6: accuracy 0 -> |0 - 0.6|; weights 1/2 each.
    assert expected_calibration_error(proba, np.array([0, 1]), bins=10) == pytest.approx(0.35)
    calibrated = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(calibrated, np.array([0, 0, 0, 1]), bins=10) == pytest.approx(0.0)
    table = reliability_table(proba, np.array([0, 1]), bins=10)
    assert len(table) == 10 and table["count"].sum() == 2


def test_full_metrics_per_class_and_confusion():
    from reprotext.evaluation import confusion_frame, full_metrics, per_class_frame

    actual, predicted = ["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "b"]
    m = full_metrics(actual, predicted, ["a", "b", "c"])
    assert m["micro_f1"] == pytest.approx(m["accuracy"]) == pytest.approx(0.6)
    # F1: a = 2/3, b = 2*(0.5*1)/1.5 = 2/3, c = 0; weighted by support 2, 2, 1.
    assert m["weighted_f1"] == pytest.approx((2 * 2 / 3 + 2 * 2 / 3) / 5)
    assert "ece" not in m
    frame = per_class_frame(actual, predicted, ["a", "b", "c"])
    assert frame.set_index("label").loc["b", "precision"] == pytest.approx(0.5)
    assert frame["support"].tolist() == [2, 2, 1]
    cm = confusion_frame(actual, predicted, ["a", "b", "c"])
    assert cm.loc["c", "b"] == 1 and cm.values.sum() == 5


def test_baselines(corpus):
    from reprotext.evaluation import majority_baseline, tfidf_logreg

    assert majority_baseline(["x", "y", "y", "x", "y"], 3) == ["y", "y", "y"]
    texts, labels = corpus
    predicted, proba, classes = tfidf_logreg(texts[:120], labels[:120], texts[120:], 1000, 10.0, 0)
    assert classes == sorted(set(labels)) and proba.shape == (len(texts) - 120, 3)
    assert np.mean([p == y for p, y in zip(predicted, labels[120:])]) > 0.9


def test_reliability_png_is_written(tmp_path):
    from reprotext.evaluation import reliability_table, save_reliability

    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    png = tmp_path / "rel.png"
    save_reliability(reliability_table(proba, np.array([0, 1, 1]), 5), 0.1, png, "t")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_report_links_every_figure_and_states_the_numbers(tmp_path):
    import pandas as pd

    from reprotext.report import write_report

    scores = {"accuracy": 0.9, "macro_f1": 0.8, "micro_f1": 0.9, "weighted_f1": 0.85, "ece": 0.05}
    role = {"model": "train", "test": scores, "test_docs": 10,
            "baselines": {"majority": {"accuracy": 0.5, "macro_f1": 0.2}, "tfidf_logreg": scores}}
    evaluate = {"source": role, "target": {**role, "model": "finetune",
                                           "zeroshot": {"majority": {"accuracy": 0.5, "macro_f1": 0.1},
                                                        "word2vec": {"accuracy": 0.4, "macro_f1": 0.3}}}}
    run = {"best_epoch": 2, "epochs_to_best": 3, "epochs_run": 5, "dev": {"accuracy": 0.9, "macro_f1": 0.8}}
    finetune = {"runs": {"pretrained": run, "scratch_train_init": {**run, "dev": {"accuracy": 0.8, "macro_f1": 0.7}}},
                "transfer_gain": {"scratch_train_init.accuracy": 0.1, "scratch_train_init.macro_f1": 0.1},
                "scratch_init": "pretrained", "zeroshot": {"dev": {"word2vec": {"accuracy": 0.4, "macro_f1": 0.3}},
                                                           "descriptions": {"money-fx": "money fx"}}}
    fewshot = pd.DataFrame([{"k": k, "variant": v, "accuracy_mean": a, "accuracy_std": 0.01, "seeds": 3}
                            for k, v, a in [("1", "pretrained", 0.6), ("1", "scratch_train_init", 0.5),
                                            ("all", "pretrained", 0.9), ("all", "scratch_train_init", 0.8)]])
    per_class = {r: pd.DataFrame({"label": ["a"], "precision": [1.0], "recall": [1.0], "f1": [1.0], "support": [3]})
                 for r in ("source", "target")}
    names = ["source_confusion", "source_reliability", "target_confusion", "target_reliability", "fewshot",
             "transfer", "finetune_history"]
    figures = {n: tmp_path / "reports" / "evaluate" / f"{n}.png" for n in names}
    out = tmp_path / "reports" / "report.md"
    out.parent.mkdir()
    write_report(out, evaluate, finetune, fewshot, per_class, figures)
    text = out.read_text()
    for n in names:
        assert f"](evaluate/{n}.png)" in text
    assert "0.600 ± 0.010" in text and "+0.100" in text and "at 1 of 1 values of k <= 10" in text
