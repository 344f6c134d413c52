from pathlib import Path

import pytest
import yaml

from reprotext.config import (SECTIONS, PrepareConfig, SplitConfig, TrainConfig, load_section, parse_section,
                              read_params)
from reprotext.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_repository_params_are_valid_for_every_stage():
    params = read_params(ROOT / "params.yaml")
    assert set(params) == set(SECTIONS)
    for name in SECTIONS:
        parse_section(name, params[name])


def test_each_dvc_stage_reads_its_own_section():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    # evaluate also reads how prepare normalised text: the exported models apply the same to their input.
    also = {"evaluate": ["prepare.unicode_form", "prepare.lowercase"],
            # pretrain trains the encoder train.model names, with that encoder's options.
            "pretrain": ["train.model", "train.transformer", "train.rnn", "train.ffnn"],
            # multitask reads its extra tasks as prepare reads a file and splits them as split does.
            "multitask": [*(f"prepare.{k}" for k in ("encoding", "unicode_form", "lowercase", "min_chars", "max_docs",
                                                      "seed")), *(f"split.{k}" for k in ("train", "dev", "test", "seed"))]}
    for name, stage in dvc["stages"].items():
        assert stage["params"] == [name, *also.get(name, [])]
        assert f"python -m stages.{name} " in stage["cmd"]
        assert (ROOT / "stages" / f"{name}.py").is_file()


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown key 'train.dropuot'; did you mean 'dropout'\?"):
        parse_section("train", {"dropuot": 0.5})


def test_unknown_section_is_an_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("trian:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match="unknown section 'trian'; did you mean 'train'"):
        read_params(path)


@pytest.mark.parametrize("values,match", [
    ({"dropout": 1.0}, r"train.dropout = 1.0"),
    ({"lr": "fast"}, r"train.lr = 'fast'"),
    ({"model": "gpt"}, r"train.model = 'gpt'.*'bag'"),
])
def test_bad_values_name_the_key_and_value(values, match):
    with pytest.raises(ConfigError, match=match):
        parse_section("train", values)


def test_split_ratios_must_sum_to_one():
    with pytest.raises(ConfigError, match="must sum to 1"):
        parse_section("split", {"train": 0.7, "dev": 0.2, "test": 0.2})
    assert SplitConfig().train == 0.7


def test_load_section_reads_only_that_section(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 0.01\nembed:\n  dim: 8\n")
    assert load_section("train", TrainConfig, path).lr == 0.01


def test_missing_params_file(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        read_params(tmp_path / "nope.yaml")


def test_load_section_checks_every_section(tmp_path):
    """A stage loads its own section only after the whole file passed: a bad train value stops prepare."""
    path = tmp_path / "params.yaml"
    path.write_text("prepare:\n  max_docs: 10\ntrain:\n  dropout: 1.5\n")
    with pytest.raises(ConfigError, match=r"train.dropout = 1.5"):
        load_section("prepare", PrepareConfig, path)
