"""The data stages in batches: every batch size gives the same outputs as one batch, and no batch is larger
than asked for (what keeps a stage's memory bounded by the batch, not the corpus)."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from reprotext.config import PrepareConfig, SplitConfig
from reprotext.data import normalize, prepare
from reprotext.data.prepare import prepare_all
from reprotext.data.report import summarize
from reprotext.data.sources import iter_labeled, iter_unlabeled, load_labeled
from reprotext.data.split import SPLITS, split_frame
from reprotext.data.split_file import split_file
from reprotext.data.store import FrameWriter, iter_frames, read_meta
from reprotext.errors import DataError
from reprotext.tokenizer import TokenArray

WORDS = {"space": "orbit rocket launch moon", "sport": "goal match team coach", "cars": "engine wheel brake road"}


def _rows(n: int = 60) -> pd.DataFrame:
    """Labelled rows with what cleaning and the leak guard act on: an empty text, a duplicate within a split, a
    duplicate across splits with another label, a case variant, and a predefined split column."""
    rows = [(f"{w.split()[i % 4]} {w.split()[(i + 1) % 4]} number {i}", label, "test" if i % 5 == 0 else "train",
             f"g{i % 7}") for label, w in WORDS.items() for i in range(n // len(WORDS))]
    rows += [("  ", "space", "train", "g1"), (rows[3][0], rows[3][1], "train", "g2"),
             (rows[0][0], "sport", "train", "g3"), (rows[1][0].upper(), "cars", "test", "g4")]
    return pd.DataFrame(rows, columns=["body", "class", "part", "who"])


def _write(frame: pd.DataFrame, path: Path) -> Path:
    name = path.name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")), encoding="utf-8")
    else:
        text = frame.to_csv(index=False, sep="\t" if ".tsv" in name else ",")
        path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


def _cfg(**kw) -> PrepareConfig:
    return PrepareConfig(text_column="body", label_column="class", **kw)


@pytest.mark.parametrize("name", ["d.csv", "d.tsv", "d.parquet", "d.jsonl", "d.csv.gz"])
def test_every_format_reads_in_batches_of_the_size_asked_for(tmp_path, name):
    path = _write(_rows(), tmp_path / name)
    cfg = _cfg(split_column="part", group_column="who")
    batches = list(iter_labeled(str(path), cfg, batch_rows=7))
    assert [len(b) for b in batches[:-1]] == [7] * (len(batches) - 1) and 1 <= len(batches[-1]) <= 7
    whole = pd.concat(batches)
    assert whole.index.tolist() == list(range(len(_rows())))  # data rows, for errors that name them
    assert whole.equals(pd.concat(list(iter_labeled(str(path), cfg, batch_rows=10_000))))
    assert whole.equals(load_labeled(str(path), cfg))


def test_a_bad_split_value_is_named_and_counted_over_all_batches(tmp_path):
    frame = _rows()
    frame.loc[[5, 40, 41], "part"] = "validation"
    path = _write(frame, tmp_path / "d.csv")
    with pytest.raises(DataError, match=r"d\.csv, row 6: split value 'validation' in column 'part' .* \(3 such rows\)"):
        list(iter_labeled(str(path), _cfg(split_column="part"), batch_rows=4))


def test_a_jsonl_key_absent_from_a_batch_is_missing_there_and_an_error_only_if_absent_everywhere(tmp_path):
    rows = [{"class": "a"}] * 3 + [{"body": f"text {i}", "class": "a" if i % 2 else "b"} for i in range(4)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    got = pd.concat(list(iter_labeled(str(tmp_path / "d.jsonl"), _cfg(), batch_rows=3)))
    assert got["text"].isna().tolist() == [True] * 3 + [False] * 4 and got["text"].iloc[-1] == "text 3"
    with pytest.raises(DataError, match=r"column 'nope' not found \(prepare\.group_column\)"):
        list(iter_labeled(str(tmp_path / "d.jsonl"), _cfg(group_column="nope"), batch_rows=3))


def test_unlabeled_lines_in_batches_are_the_lines_of_the_file(tmp_path):
    (tmp_path / "u.txt").write_text("a\r\nb\n\nc", encoding="utf-8")
    got = pd.concat(list(iter_unlabeled(str(tmp_path / "u.txt"), _cfg(), batch_rows=2)))
    assert got.tolist() == ["a\r", "b", "", "c"] and got.index.tolist() == [0, 1, 2, 3]
    (tmp_path / "e.txt").write_text("", encoding="utf-8")
    assert pd.concat(list(iter_unlabeled(str(tmp_path / "e.txt"), _cfg()))).tolist() == [""]  # as "".split("\n")


def _prepare(tmp_path: Path, batch_rows: int, **kw) -> tuple[dict[str, pd.DataFrame], dict]:
    inputs = tmp_path / "inputs"
    inputs.mkdir(exist_ok=True)
    source = _write(_rows(), inputs / "source.parquet")
    target = _write(_rows(30).assign(body=lambda d: d["body"] + " target"), inputs / "target.csv")
    unlabeled = inputs / "u.txt"
    unlabeled.write_text("\n".join(["free text one", "", _rows()["body"][2].upper(), "free text one", "more"]) + "\n",
                         encoding="utf-8")
    cfg = _cfg(source=str(source), target=str(target), unlabeled=str(unlabeled), **kw)
    out = tmp_path / f"out-{batch_rows}"
    out.mkdir()
    outs = {role: out / f"{role}.parquet" for role in ("source", "target", "unlabeled")}
    prepared = prepare_all(cfg, outs, batch_rows=batch_rows)
    return {role: pd.read_parquet(path) for role, path in outs.items()}, prepared.metrics


@pytest.mark.parametrize("kw", [{}, {"split_column": "part", "max_docs": 40}, {"lowercase": True, "min_chars": 12}])
def test_prepare_in_small_batches_writes_what_one_batch_writes(tmp_path, kw):
    small, small_metrics = _prepare(tmp_path, 4, **kw)
    whole, whole_metrics = _prepare(tmp_path, 100_000, **kw)
    assert small_metrics == whole_metrics
    assert whole_metrics["source"]["duplicates_dropped"] >= 2 and whole_metrics["unlabeled"]["overlap_dropped"] == 1
    for role in whole:
        pd.testing.assert_frame_equal(small[role], whole[role])


def test_prepare_hands_the_cleaner_batches_no_larger_than_asked_for(tmp_path, monkeypatch):
    sizes = []
    add, select = normalize.CleanScan.add, normalize.CleanScan.select
    monkeypatch.setattr(prepare.CleanScan, "add", lambda self, frame: (sizes.append(len(frame)), add(self, frame))[1])
    monkeypatch.setattr(prepare.CleanScan, "select",
                        lambda self, frame: (sizes.append(len(frame)), select(self, frame))[1])
    _prepare(tmp_path, 5)
    assert max(sizes) == 5 and len(sizes) > 10


def test_split_of_a_file_in_batches_equals_the_split_of_the_frame(tmp_path):
    frame = _rows(90).rename(columns={"body": "text", "class": "label"})[["text", "label"]]
    frame["text"] = normalize.normalize_texts(frame["text"])
    frame = pd.concat([frame, frame.head(20).assign(text=lambda d: d["text"].str.upper())])  # leaks, case aside
    frame = frame[frame["text"] != ""].drop_duplicates("text").reset_index(drop=True)
    path = tmp_path / "prepared.parquet"
    with FrameWriter(path, {"stage": "prepare"}) as writer:
        writer.write(frame)
    cfg = SplitConfig(seed=3)
    expected = split_frame(frame, cfg, "data")
    (tmp_path / "parts").mkdir()
    plan, profiles = split_file(path, cfg, tmp_path / "parts", {"stage": "split"}, batch_rows=8)
    assert plan.leaks_removed == expected.leaks_removed and sum(expected.leaks_removed.values()) > 0
    for name in SPLITS:
        got = pd.read_parquet(tmp_path / "parts" / f"{name}.parquet")
        pd.testing.assert_frame_equal(got, expected.parts[name])
        assert read_meta(tmp_path / "parts" / f"{name}.parquet") == {"format_version": 1, "stage": "split",
                                                                      "split": name}
        assert (profiles[name].chars == expected.parts[name]["text"].str.len().to_numpy()).all()
    summary = summarize("source", expected, {})
    from reprotext.data.report import summarize_profiles

    assert summarize_profiles("source", profiles, plan.leaks_removed, {}).classes.equals(summary.classes)
    assert max(len(b) for b in iter_frames(path, 8)) == 8


def test_a_frame_writer_given_no_rows_writes_an_empty_table_with_its_columns(tmp_path):
    with FrameWriter(tmp_path / "e.parquet", {"role": "unlabeled"}) as writer:
        writer.write(pd.DataFrame({"text": pd.Series([], dtype="str")}))
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.num_rows == 0 and table.column_names == ["text"]
    assert read_meta(tmp_path / "e.parquet")["role"] == "unlabeled"


def test_a_token_store_written_in_parts_is_the_store_saved_at_once(tokenizer, corpus, tmp_path):
    texts = corpus[0][:200]
    whole = tokenizer.encode_array(texts)
    whole.save(tmp_path / "saved", tokenizer.sha256)
    parts = tokenizer.encode_batches([texts[:70], texts[70:]], batch_size=16)
    written = TokenArray.write(tmp_path / "written", parts, tokenizer.sha256)
    for name in ("ids.npy", "offsets.npy", "meta.json"):
        assert (tmp_path / "written" / name).read_bytes() == (tmp_path / "saved" / name).read_bytes(), name
    assert not (tmp_path / "written" / "ids.raw").exists()
    assert np.array_equal(written.ids, whole.ids) and len(written) == len(texts)
    empty = TokenArray.write(tmp_path / "empty", iter([]), tokenizer.sha256)
    assert len(empty) == 0 and empty.offsets.tolist() == [0]
