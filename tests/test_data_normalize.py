"""Text normalisation and dataset cleaning: every script survives, whitespace and controls do not."""
from __future__ import annotations

import random
import sys

import pandas as pd
import pytest

from reprotext.data.normalize import clean, leak_keys, normalize_text, normalize_texts
from reprotext.errors import DataError

SPACES = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
SCRIPTS = {
    "cyrillic": "Съешь же ещё этих мягких французских булок",
    "cjk": "日本語のテキストと中文文本，한국어 텍스트",
    "emoji": "family 👩‍👩‍👧 flag 🇺🇦 skin 👍🏽 done",
    "arabic": "\u200fمرحبا بالعالم\u200f",
    "hebrew": "שלום עולם, ‏עברית‎",
    "devanagari": "नमस्ते दुनिया",
    "persian-zwnj": "می\u200cخواهم",
}


def _clean(frame: pd.DataFrame, **kw) -> tuple[pd.DataFrame, object]:
    args = {"form": "NFC", "lowercase": False, "min_chars": 1, "where": "data.csv", "label_column": "label"} | kw
    return clean(frame, **args)


def test_every_unicode_space_folds_like_str_split():
    rng = random.Random(0)
    texts = []
    for _ in range(200):
        pieces = [rng.choice(["a", "ж", "語", "😀", "x y"]) if rng.random() < 0.5 else rng.choice(SPACES)
                  for _ in range(rng.randint(0, 12))]
        texts.append("".join(pieces))
    got = normalize_texts(pd.Series(texts, dtype="str")).tolist()
    assert got == [" ".join(t.split()) for t in texts]


def test_control_characters_are_removed_and_separators_become_spaces():
    assert normalize_text("\x00a\x07b\x1b\x7f\x9fc") == "abc"
    assert normalize_text("line\x85next\u2028para\u2029end\x1cx") == "line next para end x"
    assert normalize_text("tab\t\t and\r\nnewline ") == "tab and newline"


@pytest.mark.parametrize("text", SCRIPTS.values(), ids=SCRIPTS.keys())
def test_every_script_survives_unchanged(text):
    assert normalize_text(text) == text
    assert normalize_text(f"  {text}\n\n{text}\t") == f"{text} {text}"


def test_nfc_composes_and_nfkc_also_folds_compatibility_forms():
    decomposed = "cafe\u0301 \ufb01le ＡＢＣ①"
    assert normalize_text(decomposed) == "café \ufb01le ＡＢＣ①"
    assert normalize_text(decomposed, form="NFKC") == "café file ABC1"


def test_lowercase_is_optional_and_unicode_aware():
    assert normalize_text("ПРИВЕТ Ärger ÉTÉ") == "ПРИВЕТ Ärger ÉTÉ"
    assert normalize_text("ПРИВЕТ Ärger ÉTÉ", lowercase=True) == "привет ärger été"


def test_missing_texts_become_empty():
    assert normalize_texts(pd.Series(["a", None, float("nan")], dtype=object)).tolist() == ["a", "", ""]


def test_leak_keys_ignore_case_and_width():
    keys = leak_keys(pd.Series(["Hello World", "hello world", "ｈｅｌｌｏ ｗｏｒｌｄ", "hello  world"], dtype="str"))
    assert keys.iloc[0] == keys.iloc[1] == keys.iloc[2] != keys.iloc[3]


def test_duplicates_after_normalisation_are_dropped_and_counted():
    frame = pd.DataFrame({"text": ["a  b", "a b", "A B", "cafe\u0301", "café", "x"],
                          "label": ["p", "q", "p", "p", "p", "q"]})
    out, stats = _clean(frame)
    assert out["text"].tolist() == ["a b", "A B", "café", "x"]
    assert out.index.tolist() == [0, 2, 3, 5]  # input rows, for error messages
    assert (stats.duplicates_dropped, stats.label_conflicts, stats.rows_kept, stats.classes) == (2, 1, 4, 2)


def test_lowercase_merges_case_duplicates():
    frame = pd.DataFrame({"text": ["Apple pie", "apple PIE", "kiwi"], "label": ["a", "a", "b"]})
    out, stats = _clean(frame, lowercase=True)
    assert out["text"].tolist() == ["apple pie", "kiwi"] and stats.duplicates_dropped == 1


def test_a_duplicate_keeps_its_copy_in_the_earliest_split():
    frame = pd.DataFrame({"text": ["same", "same", "other", "third"], "label": ["a", "a", "b", "b"],
                          "split": ["test", "train", "train", "dev"]})
    out, _ = _clean(frame)
    assert out.loc[out["text"] == "same", "split"].tolist() == ["train"]


def test_short_texts_are_dropped_and_counted():
    frame = pd.DataFrame({"text": ["", "  ", "ab", "abcd", "wxyz", "\x00\x01"], "label": ["", "a", "a", "a", "b", "b"]})
    out, stats = _clean(frame, min_chars=3)
    assert out["text"].tolist() == ["abcd", "wxyz"] and stats.short_dropped == 4


def test_a_text_without_label_names_the_row_and_column():
    frame = pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", " ", None]})
    with pytest.raises(DataError, match=r"data\.csv: 2 row\(s\) have text but no label in column 'label' "
                                         r"\(first: row 2\)"):
        _clean(frame)


def test_nothing_left_after_cleaning_is_an_error():
    frame = pd.DataFrame({"text": ["", " \t", "\x00"], "label": ["a", "b", "c"]})
    with pytest.raises(DataError, match=r"data\.csv: no documents left after cleaning \(3 rows, 3 empty"):
        _clean(frame)


def test_one_class_is_an_error():
    frame = pd.DataFrame({"text": ["a", "b"], "label": ["only", "only "]})
    with pytest.raises(DataError, match=r"only one class \('only' in column 'label'\)"):
        _clean(frame)
