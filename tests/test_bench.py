"""`bench/run.py --smoke`: every code path of `make bench` on tiny data, and the shape of what it writes."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
NAMES = {"20ng": "20 Newsgroups", "r8": "R8", "imdb": "IMDb"}
PEERS = ("TF-IDF + LR (sklearn)", "TF-IDF + linear SVM (sklearn LinearSVC)",
         "TF-IDF word + char 2-5 grams + linear SVM (sklearn LinearSVC)", "TF-IDF + Complement NB (sklearn)")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _number(value: str) -> float:
    x = float(value)  # raises on an empty or non-numeric cell
    assert math.isfinite(x), value
    return x


@pytest.mark.slow
@pytest.mark.timeout(3000)  # ~3 min on 2 idle cores; a shared, busy machine can take 10+
def test_bench_smoke(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench/run.py"), "--smoke", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=2900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    md = (tmp_path / "BENCHMARKS.md").read_text(encoding="utf-8")
    res = tmp_path / "results"
    meta = json.loads((res / "bench.json").read_text())
    assert meta["machine"]["cores"] >= 1 and meta["date"][:4].isdigit()
    assert "FAILED" not in md, md

    accuracy = _rows(res / "accuracy.csv")
    assert {"dataset", "system", "kind", "test_accuracy", "test_macro_f1", "wall_seconds"} <= set(accuracy[0])
    expected = {"20ng", "r8"} | ({"imdb"} if (DATASETS / "imdb").is_dir() else set())  # smoke: no R52, TREC
    for dataset in expected:
        ours = [r for r in accuracy if r["dataset"] == dataset and r["kind"] == "ours"]
        assert len(ours) == 1, (dataset, accuracy)
        assert 0 <= _number(ours[0]["test_accuracy"]) <= 100
        assert 0 <= _number(ours[0]["test_macro_f1"]) <= 1
        assert _number(ours[0]["wall_seconds"]) > 0
        for peer in PEERS:  # each scored on test, with the setting it chose on dev
            rows = [r for r in accuracy if r["dataset"] == dataset and r["system"] == peer]
            assert len(rows) == 1, (dataset, peer, accuracy)
            assert 0 <= _number(rows[0]["test_accuracy"]) <= 100 and 0 <= _number(rows[0]["test_macro_f1"]) <= 1
            assert 0 <= _number(rows[0]["dev_accuracy"]) <= 100 and _number(rows[0]["wall_seconds"]) > 0
            assert rows[0]["config"].startswith(("C=", "alpha=")), rows[0]
            assert f"| {NAMES[dataset]} | {peer} | peer (this run) | {float(rows[0]['test_accuracy']):.2f} |" in md
        ft = [r for r in accuracy if r["dataset"] == dataset and r["system"].startswith("fastText supervised")]
        assert len(ft) == 1 and (ft[0]["test_accuracy"] or ft[0]["note"])  # a number, or why not
        assert any(r["kind"] == "published" for r in accuracy if r["dataset"] == dataset)
        right = pd.read_csv(res / f"correct/{dataset}.csv.gz")  # each system's right/wrong per test document
        assert {"reprotext (ours)", *PEERS} <= set(right.columns) and set(right.stack().unique()) <= {0, 1}
        for system in ["reprotext (ours)", *PEERS]:  # the same documents the accuracy counts
            row = next(r for r in accuracy if r["dataset"] == dataset and r["system"] == system)
            assert 100 * right[system].mean() == pytest.approx(_number(row["test_accuracy"]), abs=1e-6)
    assert "| 20 Newsgroups | reprotext (ours) | ours |" in md
    assert "McNemar p = " in md and "paired test documents" in md
    assert "- 20 Newsgroups: ours " in md and "the strongest peer of this run" in md
    assert "chosen on 20 Newsgroups dev accuracy" in md
    if (DATASETS / "imdb").is_dir():  # smoke gives IMDb a candidate of its own, chosen on IMDb dev
        assert set(meta["choice"]["imdb"]["candidates"]) == {meta["choice"]["20ng"]["chosen"], "cnn"}, meta["choice"]
        assert "chosen on IMDb dev accuracy" in md
    assert "## Where we stand" in md and "20 Newsgroups >= 86.5%" in md and "## Retrieval on SciFact" in md

    throughput = _rows(res / "throughput.csv")
    stages = {r["stage"] for r in throughput}
    assert {"tokenizer training", "encoding", "embedding", "training step", "bag training epoch",
            "prediction"} <= stages, stages
    assert all(_number(r["ratio"]) > 0 for r in throughput)

    scaling = _rows(res / "scaling.csv")
    measured = [r for r in scaling if not r.get("skipped")]
    assert {(int(r["factor"]), r["stage"]) for r in measured} >= {(f, s) for f in (1, 10)
                                                                   for s in ("prepare", "split", "tokenize")}
    assert all(_number(r["seconds"]) > 0 and _number(r["peak_rss_gib"]) > 0 for r in measured)
    assert all(_number(r["time_growth"]) > 0 for r in measured if int(r["factor"]) > 1)
    assert "## GPU" in md


def test_fasttext_peer_trains_on_shuffled_lines(tmp_path: Path, monkeypatch) -> None:
    """fastText reads its file in order and the split files are grouped by label: the peer must shuffle."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("fasttext")  # the bench extra, installed by `make setup`
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import accuracy

    words = {"sport": ["goal", "match", "team", "score"], "money": ["bank", "price", "market", "loan"],
             "space": ["orbit", "rocket", "moon", "star"]}
    common = ["the", "a", "of", "and", "to", "in", "is", "it"]
    texts = [" ".join([ws[i % 4], common[i % 8], ws[(i // 4) % 4], common[(i // 8) % 8]] * 5)
             for ws in words.values() for i in range(200)]
    grouped = pd.DataFrame({"text": texts, "label": [label for label in words for _ in range(200)]})
    result = accuracy.fasttext_supervised({"train": grouped, "dev": grouped, "test": grouped}, ((5, 0.1, 2),), tmp_path)
    assert "error" not in result, result
    order = [line.split()[0] for line in (tmp_path / "fasttext-train.txt").read_text().splitlines()]
    assert sorted(order) == sorted(f"__label__{y}" for y in grouped["label"])
    assert sum(a != b for a, b in zip(order, order[1:])) > 10, order  # grouped would change label twice
    assert result["dev_accuracy"] == 1.0
    # The chosen setting trained again on train + dev (here dev repeats train), shuffled alike, scored on test.
    refit = [line.split()[0] for line in (tmp_path / "fasttext-refit.txt").read_text().splitlines()]
    assert len(refit) == 2 * len(grouped) and sum(a != b for a, b in zip(refit, refit[1:])) > 10
    assert result["config"].endswith("; refitted on train + dev)") and result["test_accuracy"] == 1.0


def test_each_tfidf_peer_chooses_on_dev_then_refits_on_train_and_dev(monkeypatch) -> None:
    """Every TF-IDF peer fits its vectorizer once for the choice (word + char n-grams take minutes on 20NG) and one
    model per value; then the vectorizer and the chosen model once more, on train + dev."""
    pd = pytest.importorskip("pandas")
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import accuracy
    import modes

    words = {"sport": "goal match team score coach", "money": "bank price market loan stock",
             "space": "orbit rocket moon star launch"}
    texts = [f"{ws.split()[i % 5]} {ws.split()[(i + 2) % 5]} the of {i}" for ws in words.values() for i in range(30)]
    frame = pd.DataFrame({"text": texts, "label": [label for label in words for _ in range(30)]})
    splits = {"train": frame.iloc[::2], "dev": frame.iloc[1::4], "test": frame.iloc[3::4]}
    peers = accuracy.linear_peers(modes.smoke_mode(1))
    assert set(peers) == set(PEERS)
    for name, (vectorizer, classifier, param, values) in peers.items():
        made = {"vectorizers": [], "classifiers": []}

        def counted_vectorizer(make=vectorizer):
            vec = make()
            fit_transform = vec.fit_transform
            vec.fit_transform = lambda texts: made["vectorizers"].append(len(texts)) or fit_transform(texts)
            return vec

        def counted_classifier(make=classifier, **kw):
            made["classifiers"].append(kw[param])
            return make(**kw)

        r = accuracy.vectorized_peer(splits, counted_vectorizer, counted_classifier, param, values)
        n_train, n_both = len(splits["train"]), len(splits["train"]) + len(splits["dev"])
        assert made == {"vectorizers": [n_train, n_both], "classifiers": [*values, values[0]]}, name
        assert r["dev_accuracy"] == 1.0 and r["test_accuracy"] == 1.0 and 0 < r["test_macro_f1"] <= 1, (name, r)
        assert r["config"].startswith(f"{param}={values[0]:g} (of "), r  # the first of equally good values


def test_a_run_of_one_section_keeps_the_other_sections_results(tmp_path: Path, monkeypatch) -> None:
    """`bench/run.py --sections scaling` rewrites the scaling results and keeps the accuracy and throughput ones."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import modes
    import pipeline
    import report

    def meta(command: str, date: str = "2026-01-01 00:00 UTC") -> dict:
        return {"command": command, "date": date, "minutes": 1.0, "load_avg_at_end": [1.0],
                "machine": report.machine()}

    first = pipeline.Bench(modes.smoke_mode(1), tmp_path, tmp_path / "work")
    first.mode.sections = ("accuracy", "throughput")
    first.accuracy = [{"dataset": "20ng", "system": "reprotext (ours)", "kind": "ours", "test_accuracy": 87.25,
                       "test_macro_f1": 0.8642, "dev_accuracy": None, "wall_seconds": 301.5, "config": "bag"}]
    first.throughput = [{"stage": "encoding", "ours": "Tokenizer.encode_array", "peer": "sentencepiece",
                         "ours_rate": 2.5e6, "peer_rate": 2.4e6, "unit": "tokens/s", "ratio": 1.04, "target_ratio": 0.9,
                         "size": "27 MB", "command": "python bench/bench_tokenize_embed.py"}]
    first.notes["accuracy"].append("IMDb: skipped.")
    first.choice = {"20ng": {"chosen": "bag", "candidates": {"bag": {"dev_accuracy": 0.95, "epochs_run": 4,
                                                                      "seconds": 60.0}}}}
    report.write(first, meta("python bench/run.py --sections accuracy throughput"), report.keep_earlier(first))
    accuracy_csv = (tmp_path / "results/accuracy.csv").read_bytes()
    page = (tmp_path / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert "| 20 Newsgroups | reprotext (ours) | ours | 87.25 | 0.8642 |" in page
    assert not (tmp_path / "results/scaling.csv").exists()

    second = pipeline.Bench(modes.smoke_mode(1), tmp_path, tmp_path / "work")
    second.mode.sections = ("scaling",)
    provenance = report.keep_earlier(second)
    assert second.accuracy == [{**r, "measured": None} for r in first.accuracy]  # measured by the run of its section
    assert second.throughput == first.throughput
    second.scaling = [{"factor": 1, "docs": 400, "input_mb": 0.3, "stage": "prepare", "seconds": 2.5,
                       "peak_rss_gib": 0.25},
                      {"factor": 10, "docs": 4000, "stage": "train", "skipped": "predicted 900 s > 60 s left"}]
    report.write(second, meta("python bench/run.py --sections scaling"), provenance)
    assert (tmp_path / "results/accuracy.csv").read_bytes() == accuracy_csv
    page = (tmp_path / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert "| 20 Newsgroups | reprotext (ours) | ours | 87.25 | 0.8642 |" in page and "- IMDb: skipped." in page
    assert "| encoding | Tokenizer.encode_array | sentencepiece | 2,500,000.0 |" in page
    assert "| 1x | 400 | 0.3 | prepare | 2.5 | 0.25 |" in page and "not run: predicted 900 s" in page
    assert "chosen on 20 Newsgroups dev accuracy: **bag**" in page
    assert ("(sections: scaling). The accuracy and throughput sections kept from `python bench/run.py --sections "
            "accuracy throughput`") in page
    saved = json.loads((tmp_path / "results/bench.json").read_text())
    assert saved["sections"]["accuracy"]["command"].endswith("--sections accuracy throughput")
    assert saved["sections"]["scaling"]["factors"] == [1, 10] and saved["notes"]["accuracy"] == ["IMDb: skipped."]
    assert not (tmp_path / "results/scaling.png").exists() and "scaling.png" not in page  # one size: no curve

    second.scaling.append({"factor": 10, "docs": 4000, "input_mb": 3.0, "stage": "prepare", "seconds": 20.0,
                           "peak_rss_gib": 0.5})
    report.write(second, meta("python bench/run.py --sections scaling"), provenance)
    assert (tmp_path / "results/scaling.png").stat().st_size > 10_000
    assert "](results/scaling.png)" in (tmp_path / "BENCHMARKS.md").read_text(encoding="utf-8")

    # An accuracy run of other datasets keeps 20NG's rows, marked with the date of the run that measured them.
    third = pipeline.Bench(modes.smoke_mode(1), tmp_path, tmp_path / "work")
    third.mode.sections, third.mode.datasets = ("accuracy",), ("imdb",)
    provenance = report.keep_earlier(third)
    assert [r["dataset"] for r in third.accuracy] == ["20ng"] and third.choice == first.choice
    third.accuracy.append({"dataset": "imdb", "system": "reprotext (ours)", "kind": "ours", "test_accuracy": 91.5,
                           "test_macro_f1": 0.915, "dev_accuracy": 92.9, "wall_seconds": 800.0, "config": "bag"})
    report.write(third, meta("python bench/run.py --datasets imdb --sections accuracy", "2026-01-02 00:00 UTC"),
                 provenance)
    rows = {r["dataset"]: r for r in _rows(tmp_path / "results/accuracy.csv")}
    assert rows["20ng"]["config"] == "bag" and rows["20ng"]["measured"] == "2026-01-01 00:00 UTC"
    assert rows["imdb"]["config"] == "bag" and rows["imdb"]["measured"] == ""
    page = (tmp_path / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert "- 20 Newsgroups: not run this time; their rows are kept from `python bench/run.py --sections" in page
    assert "| IMDb | reprotext (ours) | ours | 91.50 | 0.9150 | 92.90 | 800 | bag | 2026-01-02 00:00 UTC |" in page
    assert "| 20 Newsgroups | reprotext (ours) | ours | 87.25 | 0.8642 |  | 302 | bag | 2026-01-01 00:00 UTC |" in page
    assert "- 20 Newsgroups >= 86.5% (" in page and "87.25% (measured 2026-01-01 00:00 UTC, not in this run) ->" in page
    assert "- (kept from the run of 2026-01-01 00:00 UTC) IMDb: skipped." not in page  # IMDb ran this time

    fourth = pipeline.Bench(modes.smoke_mode(1), tmp_path, tmp_path / "work")  # 20NG again: nothing of it is kept
    fourth.mode.sections, fourth.mode.datasets = ("accuracy",), ("20ng",)
    report.keep_earlier(fourth)
    assert [r["dataset"] for r in fourth.accuracy] == ["imdb"] and fourth.choice == {}
    assert fourth.accuracy[0]["measured"] == "2026-01-02 00:00 UTC"
    assert fourth.notes["accuracy"] == ["IMDb: not run this time; their rows are kept from `python bench/run.py "
                                        "--datasets imdb --sections accuracy` on 2026-01-02 00:00 UTC."]

    # TREC-6 alone: 20NG's rows, kept a second time, keep their own date; the earlier notes stay, marked.
    fifth = pipeline.Bench(modes.smoke_mode(1), tmp_path, tmp_path / "work")
    fifth.mode.sections, fifth.mode.datasets = ("accuracy",), ("trec",)
    provenance = report.keep_earlier(fifth)
    assert {r["dataset"]: r["measured"] for r in fifth.accuracy} == {"20ng": "2026-01-01 00:00 UTC",
                                                                     "imdb": "2026-01-02 00:00 UTC"}
    assert fifth.notes["accuracy"] == [
        "(kept from the run of 2026-01-02 00:00 UTC) 20 Newsgroups: not run this time; their rows are kept from "
        "`python bench/run.py --sections accuracy throughput` on 2026-01-01 00:00 UTC.",
        "20 Newsgroups, IMDb: not run this time; their rows are kept from `python bench/run.py --datasets imdb "
        "--sections accuracy` on 2026-01-02 00:00 UTC."]
    fifth.accuracy.append({"dataset": "trec", "system": "CNN-rand", "kind": "published", "test_accuracy": 91.2})
    fifth.accuracy += [{"dataset": "trec", "system": "reprotext (ours)", "kind": "ours", "test_accuracy": 90.59},
                       {"dataset": "trec", "system": "fastText", "kind": "peer (this run)", "test_accuracy": 90.59}]
    fifth.correct["trec"] = {"reprotext (ours)": [True] * 8 + [True, False], "fastText": [True] * 8 + [False, True]}
    report.write(fifth, meta("python bench/run.py --datasets trec --sections accuracy", "2026-01-03 00:00 UTC"),
                 provenance)
    rows = {r["dataset"]: r for r in _rows(tmp_path / "results/accuracy.csv")}
    assert rows["20ng"]["measured"] == "2026-01-01 00:00 UTC" and rows["imdb"]["measured"] == "2026-01-02 00:00 UTC"
    page = (tmp_path / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert "- (kept from the run of 2026-01-02 00:00 UTC) 20 Newsgroups: not run this time;" in page
    assert "| TREC-6 | CNN-rand | published | 91.20 |  |  |  |  |  |" in page  # quoted, not measured: no date
    assert "90.59% -> **missed by 0.61 points**; **level with fastText 90.59%** of this run (not above it)." in page
    assert ("- TREC-6: ours 90.59%, the strongest peer of this run fastText 90.59% (+0.00 points; on 10 paired test "
            "documents ours alone is right on 1, the peer alone on 1: McNemar p = 1,") in page
    assert "Test documents scored, of the official test set: TREC-6 10 of 500. The rest repeat the text of" in page
    assert "McNemar" not in page.split("- TREC-6: ours")[0]  # 20NG and IMDb have no per-document results here

    sixth = pipeline.Bench(modes.smoke_mode(1), tmp_path, tmp_path / "work")  # the right/wrong files stay
    sixth.mode.sections = ("scaling",)
    report.keep_earlier(sixth)
    assert sixth.correct == {"trec": fifth.correct["trec"]}

    seventh = pipeline.Bench(modes.smoke_mode(1), tmp_path, tmp_path / "work")  # TREC-6 again, and it fails
    seventh.mode.sections, seventh.mode.datasets = ("accuracy",), ("trec",)
    provenance = report.keep_earlier(seventh)
    del seventh.correct["trec"]  # as Accuracy.dataset does before it runs
    report.write(seventh, meta("python bench/run.py --datasets trec --sections accuracy"), provenance)
    assert not (tmp_path / "results/correct/trec.csv.gz").exists()


def test_an_accuracy_row_marked_in_its_config_moves_the_date_to_measured(monkeypatch) -> None:
    """accuracy.csv marked kept rows with a "(measured DATE) " config prefix before it had a measured column."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from report import measured_from_config

    old = {"dataset": "20ng", "system": "reprotext (ours)", "config": "(measured 2026-11-30 00:00 UTC) bag; stages"}
    assert measured_from_config(old) == {**old, "config": "bag; stages", "measured": "2026-11-30 00:00 UTC"}
    published = {"dataset": "20ng", "system": "SWEM", "config": "(measured 2026-11-30 00:00 UTC)", "note": None}
    assert measured_from_config(published) == {**published, "config": None, "measured": "2026-11-30 00:00 UTC"}
    for row in ({"config": "C=1 (of 0.1, 1), 300 features"}, {"config": None, "note": "ValueError: (measured x)"},
                {"config": "bag", "measured": "2026-11-29 08:27 UTC"}):
        assert measured_from_config(row) == row


def test_the_earlier_notes_of_kept_datasets_stay(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from report import kept_note

    when = "2026-11-30 00:35 UTC"
    kept = {"20ng", "r8", "imdb"}
    assert kept_note("IMDb: skipped, ../shared/datasets/imdb not present.", kept, when) == (
        "(kept from the run of 2026-11-30 00:35 UTC) IMDb: skipped, ../shared/datasets/imdb not present.")
    assert kept_note("accuracy IMDb: FAILED: exit 1", kept, when) == (
        "(kept from the run of 2026-11-30 00:35 UTC) accuracy IMDb: FAILED: exit 1")
    # A list of datasets keeps the kept ones only; a note kept before keeps the date of the run that wrote it.
    assert kept_note("(kept from the run of 2026-11-29 08:27 UTC) 20 Newsgroups, R8, TREC-6: not run this time; "
                     "their rows are kept from `x` on 2026-11-28 10:00 UTC.", kept, when) == (
        "(kept from the run of 2026-11-29 08:27 UTC) 20 Newsgroups, R8: not run this time; their rows are kept "
        "from `x` on 2026-11-28 10:00 UTC.")
    for other in ("TREC-6: skipped, ../shared/datasets/trec not present.", "accuracy R52: skipped, 3 min left",
                  "The machine was busy: times are noisy.", "20 Newsgroups and friends: a note of no dataset."):
        assert kept_note(other, kept, when) is None, other


def test_a_candidate_replaces_the_baseline_only_beyond_one_standard_error(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from accuracy import one_standard_error_choice

    # 20NG's dev: 1,253 documents, the baseline at 95.69%: one standard error is 0.57 points.
    name, margin = one_standard_error_choice({"default": 0.9569, "hashed": 0.9585, "mean": 0.9377}, 1253)
    assert name == "default" and margin == pytest.approx(0.00574, abs=1e-5)
    assert one_standard_error_choice({"default": 0.9569, "hashed": 0.9585, "wider": 0.9640}, 1253)[0] == "wider"
    assert one_standard_error_choice({"bag": 0.8662, "cnn": 0.8846}, 606)[0] == "cnn"  # TREC: 1.84 > 1.38 points


def test_the_paired_comparison_counts_the_documents_one_system_alone_gets_right(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from report import paired, paired_text
    ours = [True] * 80 + [True] * 15 + [False] * 5
    peer = [True] * 80 + [False] * 15 + [True] * 5
    pair = paired(ours, peer)
    assert (pair["n"], pair["only_ours"], pair["only_peer"]) == (100, 15, 5)
    assert pair["p"] == pytest.approx(0.04139, abs=1e-4)  # two-sided exact binomial, 5 or fewer of 20 at 1/2
    se = math.sqrt((20 / 100 - 0.1 ** 2) / 100)
    assert (pair["low"], pair["high"]) == pytest.approx((100 * (0.1 - 1.96 * se), 100 * (0.1 + 1.96 * se)))
    same = paired(ours, ours)
    assert (same["only_ours"], same["only_peer"], same["p"], same["low"], same["high"]) == (0, 0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="not the same test set"):
        paired(ours, peer[:-1])
    assert "ours alone is right on 15, the peer alone on 5: McNemar p = 0.041" in paired_text(pair)
