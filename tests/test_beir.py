"""A BEIR folder as a source: loading, the dev carve-out, and one clear line for each kind of bad input."""
from __future__ import annotations

import gzip
import json

import pytest
from beir_tiny import write_beir

from reprotext.errors import DataError
from reprotext.retrieval.beir import carve_dev, load_beir, load_corpus


def test_loads_corpus_queries_and_qrels(tmp_path):
    c = load_beir(write_beir(tmp_path / "b"))
    assert len(c.corpus) == 72 and list(c.corpus.columns) == ["id", "title", "text"]
    assert set(c.qrels) == {"train", "test"} and len(c.qrels["train"]) + len(c.qrels["test"]) == 36
    assert c.doc_texts()[0].startswith(c.corpus["title"][0] + " ")
    judged = c.judgments("test")
    assert all(c.split_queries("test")["id"].isin(judged)) and len(c.split_queries("test")) == len(judged)


def test_a_compressed_corpus_loads_the_same(tmp_path):
    folder = write_beir(tmp_path / "b")
    plain = load_corpus(folder)
    raw = (folder / "corpus.jsonl").read_bytes()
    (folder / "corpus.jsonl").unlink()
    (folder / "corpus.jsonl.gz").write_bytes(gzip.compress(raw))
    assert load_corpus(folder).equals(plain)


def test_dev_is_carved_from_train_reproducibly_and_disjointly(tmp_path):
    c = load_beir(write_beir(tmp_path / "b"))
    a, b = carve_dev(c, 0.25, seed=3), carve_dev(c, 0.25, seed=3)
    assert a.qrels["dev"].equals(b.qrels["dev"])
    dev, train = set(a.qrels["dev"]["query_id"]), set(a.qrels["train"]["query_id"])
    assert dev and not dev & train and dev | train == set(c.qrels["train"]["query_id"])
    assert carve_dev(load_beir(write_beir(tmp_path / "d", dev=True)), 0.25, 0).qrels["dev"]["query_id"].nunique() == 9


def _break(folder, what):
    if what == "missing corpus":
        (folder / "corpus.jsonl").unlink()
    elif what == "bad json":
        with open(folder / "corpus.jsonl", "a") as f:
            f.write("{not json\n")
    elif what == "no _id":
        with open(folder / "queries.jsonl", "a") as f:
            f.write(json.dumps({"text": "a query without id"}) + "\n")
    elif what == "duplicate id":
        first = (folder / "corpus.jsonl").read_text().splitlines()[0]
        with open(folder / "corpus.jsonl", "a") as f:
            f.write(first + "\n")
    elif what == "qrels header":
        p = folder / "qrels" / "test.tsv"
        p.write_text("q\td\ts\n" + p.read_text().split("\n", 1)[1])
    elif what == "unknown doc":
        with open(folder / "qrels" / "test.tsv", "a") as f:
            f.write("q0-0\tnope\t1\n")
    elif what == "bad score":
        p = folder / "qrels" / "train.tsv"
        lines = p.read_text().splitlines()
        lines[1] = lines[1].rsplit("\t", 1)[0] + "\thigh"
        p.write_text("\n".join(lines) + "\n")
    elif what == "no test":
        (folder / "qrels" / "test.tsv").unlink()
    elif what == "query in two splits":
        q = (folder / "qrels" / "test.tsv").read_text().splitlines()[1]
        with open(folder / "qrels" / "train.tsv", "a") as f:
            f.write(q + "\n")


@pytest.mark.parametrize("what,match", [
    ("missing corpus", r"corpus.jsonl: not found .*a BEIR folder holds"),
    ("bad json", r"corpus.jsonl:73: not a JSON object"),
    ("no _id", r"queries.jsonl:37: no '_id' key .*every line needs _id, text"),
    ("duplicate id", r"corpus.jsonl:73: '_id' 'd0-0' already on line 1; ids must be unique"),
    ("qrels header", r"test.tsv: header 'q<TAB>d<TAB>s' is not 'query-id<TAB>corpus-id<TAB>score'"),
    ("unknown doc", r"test.tsv:11: corpus-id 'nope' is not in corpus.jsonl"),
    ("bad score", r"train.tsv:2: score 'high' is not an integer"),
    ("no test", r"test.tsv: not found; the test judgments"),
    ("query in two splits", r"is judged in both test.tsv and train.tsv"),
])
def test_bad_input_is_one_line_naming_file_place_and_fix(tmp_path, what, match):
    folder = write_beir(tmp_path / "b")
    _break(folder, what)
    with pytest.raises(DataError, match=match) as exc:
        load_beir(folder)
    assert "\n" not in str(exc.value) and str(folder) in str(exc.value)
