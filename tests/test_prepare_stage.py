"""The prepare and split stage scripts end to end: contract, determinism, report, and bad input.

Every stage runs as `python -m stages.<name>` in its own scratch directory, as
`dvc repro` runs it; the runs of one fixture start together, to use both cores.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from repo_copy import StageRun, run_stages

ROOT = Path(__file__).resolve().parents[1]
ARGS = {
    "prepare": ["--source-out", "data/prepared/source.parquet", "--target-out", "data/prepared/target.parquet",
                "--unlabeled-out", "data/prepared/unlabeled.parquet", "--metrics", "metrics/prepare.json"],
    "split": ["--prepared", "data/prepared", "--out", "data/split", "--report", "reports/data",
              "--metrics", "metrics/split.json"],
}
WORDS = {
    "ru": "мир привет книга река город небо солнце ветер дом лес".split(),
    "ja": "日本 東京 山 川 花 空 海 雨 雪 風".split(),
    "emoji": "😀 🎉 👩‍👩‍👧 🇺🇦 👍🏽 🌍 🚀 ❤️ 🍕 ☕".split(),
}



def _texts(label: str, n: int) -> list[str]:
    words = WORDS[label]
    return [" ".join(words[(i + j) % len(words)] for j in range(3 + i % 4)) + f" №{i}" for i in range(n)]


def _source_csv(path: Path) -> None:
    rows = [(t, label, "test" if i % 4 == 0 else "train") for label in WORDS for i, t in enumerate(_texts(label, 30))]
    rows += [(rows[0][0].replace(" ", "  ") + "\t", "ru", "train"), ("   ", "ja", "train")]  # a duplicate, an empty
    pd.DataFrame(rows, columns=["body", "class", "part"]).to_csv(path, index=False)


def _target_jsonl(path: Path) -> None:
    # The column params are shared: the target file uses the source's column names.
    rows = [{"body": f"שלום עולם {i}" if i % 2 else f"مرحبا {i}", "class": i % 2} for i in range(40)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _workdir(base: Path, name: str, template_db: Path, prepare: dict | None = None, split: dict | None = None) -> Path:
    """A scratch pipeline root: dvc.yaml, params.yaml (updated by ``prepare``/``split``) and an MLflow DB."""
    cwd = base / name
    cwd.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["prepare"].update(prepare or {})
    params["split"].update(split or {})
    (cwd / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    shutil.copy(ROOT / "dvc.yaml", cwd / "dvc.yaml")  # marks the pipeline root for tracking
    shutil.copy(template_db, cwd / "mlflow.db")
    return cwd


def _run_all(stage: str, dirs: list[Path]) -> list[StageRun]:
    """Run one stage in each directory, all at once."""
    return run_stages([(cwd, [stage, *ARGS[stage]]) for cwd in dirs])


def _outputs(cwd: Path) -> set[str]:
    """Every file a stage may have written (inputs live at the top level or under inputs/)."""
    return {str(p.relative_to(cwd)) for top in ("data", "metrics", "reports") for p in (cwd / top).rglob("*")
            if p.is_file()}


@pytest.fixture(scope="module")
def good(tmp_path_factory, template_db) -> dict[str, Path]:
    """Three pipelines over Unicode data: a, b (identical params, for determinism) and c (predefined split)."""
    base = tmp_path_factory.mktemp("good")
    inputs = base / "inputs"
    inputs.mkdir()
    _source_csv(inputs / "source.csv")
    _target_jsonl(inputs / "target.jsonl")
    # One document, an empty line, a copy of a labelled text (case differs), and a duplicate.
    lines = ["ЕЩЁ ОДИН ТЕКСТ", "", _texts("ru", 1)[0].upper(), "more text", "more text"]
    (inputs / "unlabeled.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    common = {"source": str(inputs / "source.csv"), "target": str(inputs / "target.jsonl"),
              "label_column": "class", "text_column": "body"}
    dirs = {
        "a": _workdir(base, "a", template_db, {**common, "unlabeled": str(inputs / "unlabeled.txt")}),
        "b": _workdir(base, "b", template_db, {**common, "unlabeled": str(inputs / "unlabeled.txt")}),
        "c": _workdir(base, "c", template_db, {**common, "target": "builtin:reuters-r8", "split_column": "part"},
                      {"method": "predefined"}),
    }
    for stage in ("prepare", "split"):
        for run in _run_all(stage, list(dirs.values())):
            assert run.returncode == 0, f"{stage} in {run.cwd.name} failed:\n{run.stderr[-3000:]}"
    return dirs


def test_outputs_meet_the_contract(good):
    cwd = good["a"]
    prepared = pd.read_parquet(cwd / "data/prepared/source.parquet")
    assert list(prepared.columns) == ["text", "label"] and len(prepared) == 90
    for role, n_classes in (("source", 3), ("target", 2)):
        parts = {n: pd.read_parquet(cwd / f"data/split/{role}/{n}.parquet") for n in ("train", "dev", "test")}
        for part in parts.values():
            assert list(part.columns) == ["text", "label"]
            assert all(isinstance(v, str) for v in part.to_numpy().ravel())
        assert parts["train"]["label"].nunique() == n_classes
        assert [len(p) for p in parts.values()] == ([63, 18, 9] if role == "source" else [28, 8, 4])
    assert set(pd.read_parquet(cwd / "data/split/target/train.parquet")["label"]) == {"0", "1"}


def test_text_in_every_script_arrives_intact(good):
    texts = set(pd.concat(pd.read_parquet(p) for p in (good["a"] / "data/split").rglob("*.parquet"))["text"])
    assert {*_texts("ru", 30), *_texts("ja", 30), *_texts("emoji", 30)} <= texts
    assert "שלום עולם 1" in texts and "مرحبا 0" in texts


def test_same_params_give_byte_identical_outputs(good):
    a, b = good["a"], good["b"]
    files = sorted(p.relative_to(a) for top in ("data", "reports", "metrics") for p in (a / top).rglob("*")
                   if p.is_file())
    assert len(files) == 14  # 3 prepared + 6 split parquet, data.md + 2 PNG, 2 metrics
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_prepare_counts_what_it_dropped(good):
    metrics = json.loads((good["a"] / "metrics/prepare.json").read_text())
    assert metrics["source"] == {"rows_in": 92, "short_dropped": 1, "duplicates_dropped": 1, "label_conflicts": 0,
                                 "sampled_out": 0, "rows_kept": 90, "classes": 3}
    assert metrics["unlabeled"] == {"rows_in": 5, "short_dropped": 1, "duplicates_dropped": 1, "overlap_dropped": 1,
                                    "rows_kept": 2}
    unlabeled = pd.read_parquet(good["a"] / "data/prepared/unlabeled.parquet")
    assert unlabeled["text"].tolist() == ["ЕЩЁ ОДИН ТЕКСТ", "more text"]


def test_unlabeled_output_exists_and_is_empty_when_not_configured(good):
    unlabeled = pd.read_parquet(good["c"] / "data/prepared/unlabeled.parquet")
    assert list(unlabeled.columns) == ["text"] and unlabeled.empty


def test_predefined_split_keeps_the_test_rows(good):
    source = pd.read_csv(good["c"].parent / "inputs/source.csv")
    split = {n: set(pd.read_parquet(good["c"] / f"data/split/source/{n}.parquet")["text"]) for n in ("train", "test")}
    # The first test text also sits in train (with extra whitespace): prepare keeps the train copy.
    first = _texts("ru", 1)[0]
    assert split["test"] == set(source.loc[source["part"] == "test", "body"]) - {first}
    assert first in split["train"]
    target_test = pd.read_parquet(good["c"] / "data/split/target/test.parquet")
    assert 2150 <= len(target_test) <= 2189  # Reuters R8's official test set, less duplicates of training texts


def test_report_has_counts_lengths_and_plots(good):
    report = good["a"] / "reports/data"
    md = (report / "data.md").read_text(encoding="utf-8")
    assert "| documents | 63 | 18 | 9 | 90 |" in md
    assert "| emoji | 21 | 6 | 3 | 30 |" in md
    assert "1 exact duplicates dropped" in md and "| leaks removed | 0 | 0 | 0 | 0 |" in md
    assert "| all | chars |" in md and "| train | words |" in md
    for role in ("source", "target"):
        assert (report / f"{role}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{role}]({role}.png)" in md


def test_metrics_reach_dvc_and_mlflow(good):
    from mlflow.tracking import MlflowClient

    split = json.loads((good["a"] / "metrics/split.json").read_text())
    assert split["source"]["train_docs"] == 63 and split["target"]["leaks_removed"] == 0
    # bench/accuracy.py takes the size of the dev set from here
    assert split["source"]["dev_docs"] == len(pd.read_parquet(good["a"] / "data/split/source/dev.parquet")) == 18
    client = MlflowClient(f"sqlite:///{good['a'] / 'mlflow.db'}")
    runs = {r.info.run_name: r for r in client.search_runs(client.get_experiment_by_name("reprotext").experiment_id)}
    assert runs["prepare"].data.metrics["source/duplicates_dropped"] == 1
    assert runs["prepare"].data.metrics["unlabeled/overlap_dropped"] == 1
    assert runs["split"].data.metrics["source/test_docs"] == 9
    assert runs["split"].data.params["split.method"] == "stratified"


def _csv(rows: list[tuple[str, str]], header: str = "text,label") -> bytes:
    return (header + "\n" + "".join(f"{t},{l}\n" for t, l in rows)).encode()


GOOD_ROWS = [(f"doc {i}", "ab"[i % 2]) for i in range(20)]
BAD = {  # case: (stage, prepare params, split params, input files, expected in the error line)
    "missing file": ("prepare", {"source": "nope.csv"}, {}, {},
                     "nope.csv: data file not found (prepare.source); set prepare.source to an existing file"),
    "unknown format": ("prepare", {"source": "data.xlsx"}, {}, {"data.xlsx": b"x"},
                       "data.xlsx: unknown format '.xlsx'; use .csv, .tsv, .parquet, .jsonl"),
    "missing column": ("prepare", {"source": "data.csv", "text_column": "body"}, {},
                       {"data.csv": _csv(GOOD_ROWS, "content,label")},
                       "column 'body' not found (prepare.text_column); available columns: 'content', 'label'"),
    "empty after cleaning": ("prepare", {"source": "data.csv"}, {}, {"data.csv": _csv([(" ", "a"), ("\t", "b")])},
                             "data.csv (prepare.source): no documents left after cleaning (2 rows, 2 empty"),
    "one class (bad target)": ("prepare", {"source": "good.csv", "target": "data.csv"}, {},
                               {"good.csv": _csv(GOOD_ROWS), "data.csv": _csv([("x", "a"), ("y", "a")])},
                               "data.csv (prepare.target): only one class ('a' in column 'label')"),
    "missing labels": ("prepare", {"source": "data.csv"}, {}, {"data.csv": _csv([("x", "a"), ("y", ""), ("z", "b")])},
                       "1 row(s) have text but no label in column 'label' (first: row 2)"),
    "undecodable bytes": ("prepare", {"source": "data.csv"}, {},
                          {"data.csv": _csv(GOOD_ROWS[:2]) + "café,b\n".encode("cp1252")},
                          "data.csv, line 4, byte 4: 0xe9 is not valid utf-8; set prepare.encoding to the file's "
                          "encoding (e.g. latin-1 or cp1252)"),
    "unknown encoding": ("prepare", {"encoding": "klingon"}, {}, {},
                         "prepare.encoding 'klingon' is not a known text encoding"),
    "ratios": ("split", {}, {"train": 0.7, "dev": 0.2, "test": 0.2}, {},
               "split ratios train+dev+test must sum to 1, got 0.7+0.2+0.2=1.1; adjust split.train"),
    "class too small": ("split", {}, {}, {"data/prepared/source.parquet": [("x", "rare"), ("y", "rare")]},
                        "class 'rare' has 2 document(s); a stratified train/dev/test split needs at least 3"),
}


def _prepared(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["text", "label"])


@pytest.fixture(scope="module")
def bad(tmp_path_factory, template_db) -> dict[str, tuple[StageRun, set[str]]]:
    """Each bad case run once (all at once); with the files present under data/ before the run."""
    base = tmp_path_factory.mktemp("bad")
    dirs: dict[str, Path] = {}
    for case, (stage, prepare, split, files) in ((c, v[:4]) for c, v in BAD.items()):
        prepare = {k: str(base / case.replace(" ", "_") / v) if k in ("source", "target") and "." in v else v
                   for k, v in prepare.items()}
        cwd = dirs[case] = _workdir(base, case.replace(" ", "_"), template_db, prepare, split)
        if stage == "split":
            files = {"data/prepared/source.parquet": GOOD_ROWS, "data/prepared/target.parquet": GOOD_ROWS} | files
        for name, content in files.items():
            (cwd / name).parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                (cwd / name).write_bytes(content)
            else:
                _prepared(content).to_parquet(cwd / name, index=False)
    before = {case: _outputs(cwd) for case, cwd in dirs.items()}
    runs = {}
    for stage in ARGS:
        cases = [c for c in BAD if BAD[c][0] == stage]
        runs |= dict(zip(cases, _run_all(stage, [dirs[c] for c in cases])))
    return {case: (runs[case], before[case]) for case in BAD}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_fails_with_one_clear_line_and_writes_nothing(bad, case):
    run, before = bad[case]
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and BAD[case][4] in last, last
    assert _outputs(run.cwd) == before


def test_a_bad_value_in_a_later_section_stops_prepare(tmp_path, template_db):
    """The whole params.yaml is checked by the first stage that runs: a bad train value stops prepare, in seconds."""
    (tmp_path / "good.csv").write_bytes(_csv(GOOD_ROWS))
    good = str(tmp_path / "good.csv")
    cwd = _workdir(tmp_path, "w", template_db, {"source": good, "target": good})
    params = yaml.safe_load((cwd / "params.yaml").read_text(encoding="utf-8"))
    params["train"]["dropout"] = 1.5
    (cwd / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    start = time.perf_counter()
    (run,) = _run_all("prepare", [cwd])
    assert run.returncode == 2, run.stderr[-2000:]  # with a good train section these files prepare fine
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("error: params.yaml: train.dropout = 1.5: "), lines[-1]
    assert not _outputs(cwd)
    assert time.perf_counter() - start < 60  # checked before any data is read
