"""Splits: proportions per class, determinism, predefined and grouped splits, the leak guard."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reprotext.config import SplitConfig
from reprotext.data.report import summarize, write_report
from reprotext.data.split import SPLITS, SplitResult, allocate, remove_leaks, split_frame
from reprotext.errors import DataError

SIZES = {"big": 97, "mid": 50, "small": 13, "tiny": 7, "three": 3}
RATIOS = {"train": 0.7, "dev": 0.2, "test": 0.1}


def _frame(sizes: dict[str, int] = SIZES) -> pd.DataFrame:
    labels = [label for label, n in sizes.items() for _ in range(n)]
    return pd.DataFrame({"text": [f"doc {i} of {label}" for i, label in enumerate(labels)], "label": labels})


def _where(result, text: str) -> list[str]:
    return [name for name, part in result.parts.items() if text in set(part["text"])]


def test_allocation_rounds_every_cell_and_keeps_row_and_column_sums():
    rng = np.random.default_rng(0)
    ratios = np.array([0.7, 0.2, 0.1])
    for _ in range(300):
        counts = rng.integers(1, 60, size=rng.integers(1, 25))
        alloc = allocate(counts, ratios)
        exact = counts[:, None] * ratios
        assert (np.abs(alloc - exact) < 1 + 1e-9).all()
        assert (alloc.sum(axis=1) == counts).all()
        assert (np.abs(alloc.sum(axis=0) - counts.sum() * ratios) < 1 + 1e-9).all()


def test_each_class_is_within_one_document_of_its_share_in_each_split():
    result = split_frame(_frame(), SplitConfig(), "data")
    for label, n in SIZES.items():
        for name, ratio in RATIOS.items():
            got = int((result.parts[name]["label"] == label).sum())
            assert abs(got - n * ratio) < 1 + 1e-9, (label, name, got)
    assert sum(len(p) for p in result.parts.values()) == sum(SIZES.values())
    assert all(list(p.columns) == ["text", "label"] for p in result.parts.values())


def test_other_ratios_are_honoured():
    result = split_frame(_frame({"a": 200, "b": 100}), SplitConfig(train=0.5, dev=0.25, test=0.25), "data")
    assert [len(result.parts[n]) for n in SPLITS] == [150, 75, 75]


def test_same_seed_same_split_other_seed_other_split():
    frame = _frame()
    a, b = (split_frame(frame, SplitConfig(seed=7), "data") for _ in range(2))
    c = split_frame(frame, SplitConfig(seed=8), "data")
    assert all(a.parts[n].equals(b.parts[n]) for n in SPLITS)
    assert not a.parts["test"].equals(c.parts["test"])


def test_a_class_too_small_to_stratify_is_named():
    with pytest.raises(DataError, match=r"data: class 'rare' has 2 document\(s\); a stratified train/dev/test split "
                                         r"needs at least 3 per class"):
        split_frame(_frame({"common": 20, "rare": 2}), SplitConfig(), "data")


def test_an_empty_split_is_an_error():
    with pytest.raises(DataError, match=r"the test split is empty .*raise split\.test"):
        split_frame(_frame({"a": 3, "b": 3}), SplitConfig(train=0.85, dev=0.1, test=0.05), "data")


def test_leak_guard_keeps_the_earliest_copy_and_counts_the_rest():
    texts = pd.Series(["Hello world", "hello world", "ＨＥＬＬＯ ＷＯＲＬＤ", "unique", "other", "OTHER"], dtype="str")
    part = np.array([2, 0, 1, 1, 1, 1], dtype=np.int8)
    kept, removed = remove_leaks(texts, part)
    assert kept.tolist() == [-1, 0, -1, 1, 1, 1]  # case variants inside one split are not leaks
    assert removed == {"train": 0, "dev": 1, "test": 1}


def test_split_removes_leaks_so_no_text_is_in_two_splits():
    frame = _frame({"a": 40, "b": 40})
    frame.loc[frame.index[::2], "text"] = frame["text"].iloc[::2].str.upper()  # every other text twice, by case
    frame = pd.concat([frame, frame.assign(text=frame["text"].str.lower())], ignore_index=True)
    result = split_frame(frame, SplitConfig(), "data")
    keys = {n: set(p["text"].str.lower()) for n, p in result.parts.items()}
    assert not (keys["train"] & keys["dev"] or keys["train"] & keys["test"] or keys["dev"] & keys["test"])
    assert sum(result.leaks_removed.values()) == len(frame) - sum(len(p) for p in result.parts.values()) > 0


def _predefined(n_train: int = 90, n_test: int = 30) -> pd.DataFrame:
    frame = _frame({"a": n_train + n_test, "b": n_train + n_test})
    frame["split"] = ["train" if i % (n_train + n_test) < n_train else "test" for i in range(len(frame))]
    return frame


def test_predefined_keeps_test_and_carves_dev_from_train():
    frame = _predefined()
    result = split_frame(frame, SplitConfig(method="predefined"), "data")
    assert set(result.parts["test"]["text"]) == set(frame.loc[frame["split"] == "test", "text"])
    for label in ("a", "b"):  # dev is 0.2 / (0.7 + 0.2) of each class's 90 training documents
        assert int((result.parts["dev"]["label"] == label).sum()) == 20
        assert int((result.parts["train"]["label"] == label).sum()) == 70


def test_predefined_dev_rows_are_kept_as_they_are():
    frame = _predefined()
    frame.loc[[0, 1, 120], "split"] = "dev"
    result = split_frame(frame, SplitConfig(method="predefined"), "data")
    assert sorted(result.parts["dev"]["text"]) == sorted(frame.loc[[0, 1, 120], "text"])


def test_predefined_split_leaks_are_removed_from_test():
    frame = _predefined()
    frame.loc[frame.index[-1], "text"] = frame.loc[0, "text"].upper()  # a test row copies a train row
    result = split_frame(frame, SplitConfig(method="predefined"), "data")
    assert result.leaks_removed == {"train": 0, "dev": 0, "test": 1}
    assert len(result.parts["test"]) == 59


def test_predefined_needs_a_split_column_and_test_rows():
    with pytest.raises(DataError, match=r"no split column; set prepare\.split_column"):
        split_frame(_frame(), SplitConfig(method="predefined"), "data")
    with pytest.raises(DataError, match=r"the predefined split has no test rows"):
        split_frame(_frame().assign(split="train"), SplitConfig(method="predefined"), "data")


def _grouped(n_groups: int = 40, per_group: int = 5) -> pd.DataFrame:
    frame = _frame({"a": n_groups * per_group // 2, "b": n_groups * per_group // 2})
    frame["group"] = [f"g{i // per_group}" for i in range(len(frame))]
    return frame


def test_a_group_never_straddles_splits():
    frame = _grouped()
    result = split_frame(frame, SplitConfig(), "data")
    group_of = dict(zip(frame["text"], frame["group"]))
    seen = {n: {group_of[t] for t in p["text"]} for n, p in result.parts.items()}
    assert not (seen["train"] & seen["dev"] or seen["train"] & seen["test"] or seen["dev"] & seen["test"])
    assert [len(seen[n]) for n in SPLITS] == [28, 8, 4]  # 10 folds: 7 / 2 / 1


def test_grouped_predefined_carves_dev_by_group():
    frame = _grouped(n_groups=36)
    frame["split"] = np.where(frame["group"].str[1:].astype(int) % 4 == 0, "test", "train")
    result = split_frame(frame, SplitConfig(method="predefined"), "data")
    group_of = dict(zip(frame["text"], frame["group"]))
    dev, train = ({group_of[t] for t in result.parts[n]["text"]} for n in ("dev", "train"))
    assert dev and train and not dev & train
    assert set(result.parts["test"]["text"]) == set(frame.loc[frame["split"] == "test", "text"])


def test_a_group_across_predefined_splits_is_named():
    frame = _grouped()
    frame["split"] = ["test" if i % 7 == 0 else "train" for i in range(len(frame))]
    with pytest.raises(DataError, match=r"group 'g0' has rows in several splits"):
        split_frame(frame, SplitConfig(method="predefined"), "data")


def test_too_few_groups_is_an_error():
    with pytest.raises(DataError, match=r"only 4 distinct groups .* needs at least 10"):
        split_frame(_grouped(n_groups=4), SplitConfig(), "data")


def test_report_counts_classes_lengths_and_absent_classes(tmp_path):
    parts = {"train": pd.DataFrame({"text": ["a b c", "abc", "x|y z"], "label": ["p", "q", "r|s"]}),
             "dev": pd.DataFrame({"text": ["d e"], "label": ["p"]}),
             "test": pd.DataFrame({"text": ["f"], "label": ["q"]})}
    summary = summarize("source", SplitResult(parts, {"train": 0, "dev": 1, "test": 2}), {})
    assert summary.classes.loc["p"].tolist() == [1, 1, 0, 2]
    assert summary.metrics() == {"train_docs": 3, "dev_docs": 1, "test_docs": 1, "classes": 3, "leaks_removed": 3,
                                 "chars_median": 3.0, "chars_mean": 3.4, "words_median": 2.0, "words_mean": 1.8}
    write_report(tmp_path, [summary], SplitConfig())
    md = (tmp_path / "data.md").read_text(encoding="utf-8")
    assert "## source\n" in md and "Prepare:" not in md  # no prepare metadata: nothing invented
    assert "| leaks removed | 0 | 1 | 2 | 3 |" in md
    assert "| r\\|s | 1 | 0 | 0 | 1 |" in md
    assert "Classes absent from a split: q (dev), r\\|s (dev), p (test), r\\|s (test)." in md
    assert (tmp_path / "source.png").read_bytes()[:4] == b"\x89PNG"
