"""Saved torch artefacts: the one save/load pair every model kind goes through."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from reprotext.artifacts import ArtifactKind, load_artifact, read_artifact_meta, read_state, save_artifact
from reprotext.errors import ArtifactError
from reprotext.io import FORMAT_VERSION, check_format
from reprotext.models import Classifier, ModelConfig
from reprotext.pretraining import init_from_pretrained, save_pretrained
from reprotext.retrieval import dual_encoder

KIND = ArtifactKind("toy", "toy.pt", "toy.json", fix="rerun `make toy`", made="toy was trained",
                    tokenizer_fix="retrain it or use its own tokenizer")
SHA = "ab" * 32


def _build(meta: dict) -> nn.Module:
    return nn.Linear(meta["config"]["inputs"], 2)


def _save(directory, module: nn.Module | None = None) -> nn.Module:
    module = module or nn.Linear(3, 2)
    save_artifact(directory, KIND, module.state_dict(), {"config": {"inputs": 3, "tokenizer_sha256": SHA}, "epoch": 4})
    return module


def test_round_trip_keeps_weights_and_record_and_returns_eval_mode(tmp_path):
    module = _save(tmp_path)
    back, meta = load_artifact(tmp_path, KIND, _build, SHA)
    assert meta == {"format_version": FORMAT_VERSION, "config": {"inputs": 3, "tokenizer_sha256": SHA}, "epoch": 4}
    assert not back.training
    x = torch.randn(5, 3)
    torch.testing.assert_close(back(x), module(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.json", "toy.pt"]  # no temporary files left


def test_a_record_alone_has_no_weights_file(tmp_path):
    save_artifact(tmp_path, KIND, None, {"tokenizer_sha256": SHA})
    assert not (tmp_path / "toy.pt").exists()
    assert read_artifact_meta(tmp_path, KIND)["tokenizer_sha256"] == SHA


@pytest.mark.parametrize("damage,message", [
    (lambda d: (d / "toy.json").unlink(), "{d}: toy missing or unreadable"),
    (lambda d: (d / "toy.json").write_text("{"), "{d}: toy missing or unreadable"),
    (lambda d: _edit(d, format_version=0), "{d}: toy format 0 is not 1; rerun `make toy`"),
    (lambda d: _edit(d, config={"tokenizer_sha256": SHA}), "{d}: toy config does not match this version of reprotext"),
    (lambda d: (d / "toy.pt").write_bytes(b"\x00garbage"), "{d}/toy.pt: corrupted or incompatible weights"),
    (lambda d: _save(d, nn.Linear(4, 2)), "{d}/toy.pt: corrupted or incompatible weights (RuntimeError)"),
])
def test_each_failure_is_one_line_naming_the_directory(tmp_path, damage, message):
    _save(tmp_path)
    damage(tmp_path)
    with pytest.raises(ArtifactError) as err:
        load_artifact(tmp_path, KIND, _build)
    text = str(err.value)
    assert text.startswith(message.format(d=tmp_path)) and "\n" not in text, text
    assert text.endswith("rerun `make toy`")


def _edit(directory, **changes) -> None:
    meta = json.loads((directory / "toy.json").read_text())
    (directory / "toy.json").write_text(json.dumps({**meta, **changes}))


def test_another_tokenizer_is_refused_and_none_skips_the_check(tmp_path):
    _save(tmp_path)
    with pytest.raises(ArtifactError, match=r"toy was trained with tokenizer abababababab, not cdcdcdcdcdcd; "
                                            r"retrain it or use its own tokenizer$"):
        load_artifact(tmp_path, KIND, _build, "cd" * 32)
    assert load_artifact(tmp_path, KIND, _build, None)[1]["epoch"] == 4


def test_the_tokenizer_can_sit_at_the_top_of_the_record(tmp_path):
    top = ArtifactKind("top", "w.pt", "m.json", fix="redo", made="it was made", tokenizer_key=("tokenizer_sha256",))
    save_artifact(tmp_path, top, {"w": torch.ones(2)}, {"tokenizer_sha256": SHA})
    assert top.tokenizer(read_artifact_meta(tmp_path, top)) == SHA
    assert torch.equal(read_state(tmp_path, top)["w"], torch.ones(2))
    assert top.tokenizer({"tokenizer_sha256": None}) is None and KIND.tokenizer({"config": "not a mapping"}) is None


def test_check_format_names_what_and_how_to_fix(tmp_path):
    check_format(tmp_path, {"format_version": FORMAT_VERSION}, "index", "rebuild it")
    with pytest.raises(ArtifactError, match=r"index format None is not 1; rebuild it$"):
        check_format(tmp_path, {}, "index", "rebuild it")


def test_corrupted_dual_encoder_and_pretrained_weights_are_one_line_errors(tmp_path):
    config = ModelConfig("rnn", 50, 8, ("a", "b"), tokenizer_sha256=SHA, encoder={"hidden_size": 8})
    dual_encoder.save_encoder(Classifier(config), tmp_path / "dual", {})
    (tmp_path / "dual" / "encoder.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="dual/encoder.pt: corrupted or incompatible weights .*finetune`$"):
        dual_encoder.load_encoder(tmp_path / "dual", SHA)

    class LM(nn.Module):  # what save_pretrained reads of a language model
        objective = "causal_lm"

        def __init__(self):
            super().__init__()
            self.encoder = Classifier(config).encoder

        def transferable(self) -> dict[str, torch.Tensor]:
            return dict(self.encoder.state_dict())

    save_pretrained(tmp_path / "pre", LM(), "rnn", {"hidden_size": 8}, SHA, {})
    target = Classifier(config)
    assert init_from_pretrained(target, tmp_path / "pre", SHA, True) == "causal_lm"
    (tmp_path / "pre" / "encoder.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="pre/encoder.pt: corrupted or incompatible weights .*pretrain`$"):
        init_from_pretrained(target, tmp_path / "pre", SHA, True)
