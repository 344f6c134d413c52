"""Language-model pretraining: the objectives, that a causal LM cannot see the future, training, and the hand-over."""
import json
from contextlib import nullcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reprotext.config import PretrainConfig
from reprotext.errors import ArtifactError, ConfigError
from reprotext.models import Classifier, ModelConfig
from reprotext.pretraining import (IGNORE, build_language_model, context_windows, init_from_pretrained, mask_pieces,
                                   pack, pretrain, read_meta, sampled_softmax_loss, save_marker, save_pretrained)
from reprotext.pretraining.artifact import WEIGHTS_FILE
from reprotext.pretraining.objectives import FIRST_REGULAR, next_targets, previous_targets
from reprotext.tokenizer import MASK, PAD

V, D = 60, 8
OPTIONS = {
    "transformer": {"layers": 1, "heads": 2, "ff_dim": 16, "pooling": "cls", "max_positions": 32},
    "rnn": {"cell": "lstm", "hidden_size": 12, "layers": 1, "bidirectional": True, "pooling": "max"},
    "ffnn": {"window": 10, "proj_dim": 4, "hidden": [16]},
}
SMALL = PretrainConfig(max_tokens=4096, epochs=2, seq_len=16, batch_size=8, dev_tokens=256, negatives=16,
                       dropout=0.0)


def _vectors(seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(0, 0.3, (V, D)).astype(np.float32)
    v[PAD] = 0
    return v


def _lm(model: str, cfg: PretrainConfig = SMALL):
    torch.manual_seed(0)
    return build_language_model(model, OPTIONS[model], _vectors(), cfg).eval()


@pytest.mark.parametrize("rate,mask_share,random_share", [(0.15, 0.8, 0.1), (0.4, 0.5, 0.3)])
def test_masking_rates_are_what_the_params_say(rate, mask_share, random_share):
    ids = torch.randint(FIRST_REGULAR, 5000, (400, 500))
    ids[:, 450:] = PAD
    g = torch.Generator().manual_seed(0)
    inputs, targets = mask_pieces(ids, rate, mask_share, random_share, 5000, g)
    chosen = targets != IGNORE
    real = ids != PAD
    assert not chosen[~real].any() and (inputs[~real] == PAD).all()  # padding is never chosen nor changed
    assert chosen[real].float().mean().item() == pytest.approx(rate, abs=0.005)
    assert (targets[chosen] == ids[chosen]).all() and (inputs[~chosen] == ids[~chosen]).all()
    masked = (inputs == MASK) & chosen
    kept = (inputs == ids) & chosen
    randomised = chosen & ~masked & ~kept
    n = chosen.sum().item()
    assert masked.sum().item() / n == pytest.approx(mask_share, abs=0.01)
    # A random replacement equal to the original counts as kept (1 in ~5000 here).
    assert randomised.sum().item() / n == pytest.approx(random_share, abs=0.01)
    assert kept.sum().item() / n == pytest.approx(1 - mask_share - random_share, abs=0.01)
    assert (inputs[randomised] >= FIRST_REGULAR).all()  # never a special piece


def test_causal_shifts_and_context_windows():
    ids = torch.tensor([[7, 8, 9, PAD]])
    assert next_targets(ids).tolist() == [[8, 9, IGNORE, IGNORE]]
    assert previous_targets(ids).tolist() == [[IGNORE, 7, 8, IGNORE]]
    assert context_windows(torch.tensor([[7, 8, 9]]), 2).tolist() == [[[PAD, PAD], [PAD, 7], [7, 8]]]


@pytest.mark.parametrize("model", ["rnn", "ffnn"])
def test_causal_lm_cannot_see_the_future(model):
    """No prediction depends on the piece it predicts or on anything beyond it in its reading direction.

    The pieces are all different, so a target's value says where it sits. For every prediction (state t, target
    at position p) and every position q, changing piece q may change state t only when q is strictly before p
    (forward LMs, Bengio's) or strictly after p (the backward LM). Dropping the causal shift (state t predicting
    its own piece) or mixing the directions fails this.
    """
    lm = _lm(model)
    T = 14
    ids = (torch.randperm(V - FIRST_REGULAR, generator=torch.Generator().manual_seed(1))[:T] + FIRST_REGULAR)[None]
    with torch.no_grad():
        base = lm.outputs(ids)
        assert len(base) == (2 if model == "rnn" else 1)  # the bidirectional RNN: a backward LM too
        seen_past = [False] * len(base)
        for q in range(T):
            changed = ids.clone()
            changed[0, q] = FIRST_REGULAR if ids[0, q] != FIRST_REGULAR else FIRST_REGULAR + 1
            for d, ((h, targets), (h2, _)) in enumerate(zip(base, lm.outputs(changed))):
                for t in range(T):
                    if targets[0, t] == IGNORE:
                        continue
                    p = int((ids[0] == targets[0, t]).nonzero())
                    moved = not torch.allclose(h[0, t], h2[0, t])
                    allowed = q < p if d == 0 else q > p
                    assert allowed or not moved, f"direction {d}: the prediction of piece {p} at {t} reads piece {q}"
                    seen_past[d] |= moved
    assert all(seen_past)  # and the predictions do read their past


def test_a_stacked_bidirectional_rnn_is_refused():
    options = {**OPTIONS["rnn"], "layers": 2}
    with pytest.raises(ConfigError, match="layers: 1 or train.rnn.bidirectional: false"):
        build_language_model("rnn", options, _vectors(), SMALL)


def test_masked_lm_predicts_only_the_chosen_pieces():
    lm = _lm("transformer")
    ids = torch.randint(FIRST_REGULAR, V, (4, 16))
    [(h, targets)] = lm.outputs(ids, torch.Generator().manual_seed(0))
    assert h.shape == (4, 16, D)
    chosen = targets != IGNORE
    assert 0 < chosen.sum() < ids.numel() and (targets[chosen] == ids[chosen]).all()


def test_output_embeddings_are_the_input_embeddings():
    for model in OPTIONS:
        lm = _lm(model)
        assert lm.output.weight is lm.encoder.embedding.weight
        torch.testing.assert_close(lm.output.weight.detach(), torch.from_numpy(_vectors()))


def test_sampled_softmax_with_every_piece_once_is_the_full_softmax():
    torch.manual_seed(0)
    h, weight, bias = torch.randn(5, D), torch.randn(V, D), torch.randn(V)
    targets = torch.tensor([6, 7, 20, 33, 59])
    log_q = torch.full((V,), -np.log(V))  # uniform q: the correction log(K q) is 0 for K = V
    got = sampled_softmax_loss(h, targets, weight, bias, torch.arange(V), log_q)
    torch.testing.assert_close(got, F.cross_entropy(h @ weight.T + bias, targets))


def _topic_stream(n: int = 6000, seed: int = 0) -> np.ndarray:
    """A predictable synthetic stream: pieces cycle through short fixed phrases."""
    rng = np.random.default_rng(seed)
    phrases = [rng.integers(FIRST_REGULAR, V, size=rng.integers(3, 6)) for _ in range(8)]
    out = np.concatenate([phrases[i] for i in rng.integers(0, len(phrases), n // 4)])
    return out[:n]


@pytest.mark.parametrize("model", list(OPTIONS))
def test_pretraining_lowers_dev_perplexity_below_unigram(model):
    from reprotext.tokenizer import TokenArray

    stream = _topic_stream()
    train = pack([TokenArray(stream[:5000].astype(np.int32), np.array([0, 5000]))], SMALL.seq_len)
    dev = pack([TokenArray(stream[5000:].astype(np.int32), np.array([0, 1000]))], SMALL.seq_len)
    cfg = SMALL.model_copy(update={"max_tokens": 48_000, "epochs": 3, "lr": 1e-2})
    torch.manual_seed(0)
    lm = build_language_model(model, OPTIONS[model], _vectors(), cfg)
    rows = []
    result = pretrain(lm, train, dev, cfg, rows.append)
    ppl = [r["dev/perplexity"] for r in result.history]
    assert rows == result.history and len(ppl) == 3
    # A masked LM this small learns positions slowly (it reaches ~0.84 of unigram here); the causal ones ~0.5.
    ratio = 0.9 if model == "transformer" else 0.7
    assert ppl[-1] < ppl[0] and ppl[-1] < ratio * result.unigram_perplexity, (ppl, result.unigram_perplexity)
    assert result.train_tokens >= 48_000 - cfg.batch_size * cfg.seq_len and result.tokens_per_second > 0


def test_pack_concatenates_and_pads_only_the_last_row():
    from reprotext.tokenizer import TokenArray

    arr = TokenArray.from_lists([[6, 7, 8], [9, 10], [11]])
    assert pack([arr], 4).tolist() == [[6, 7, 8, 9], [10, 11, PAD, PAD]]
    assert pack([arr], 4, max_tokens=3).tolist() == [[6, 7, 8, PAD]]


def _classifier(model: str, **config) -> Classifier:
    torch.manual_seed(123)
    cfg = ModelConfig(model, V, D, ("a", "b"), max_len=32, tokenizer_sha256="tok", encoder=OPTIONS.get(model, {}),
                      **config)
    return Classifier(cfg, _vectors(seed=5))


@pytest.mark.parametrize("model", list(OPTIONS))
def test_train_from_a_pretrained_encoder_loads_exactly_its_weights(model, tmp_path):
    lm = _lm(model)
    with torch.no_grad():  # as if trained: every weight moved away from its init
        for p in lm.parameters():
            p.add_(torch.randn_like(p))
    save_pretrained(tmp_path, lm, model, OPTIONS[model], "tok", {"history": []})
    saved = torch.load(tmp_path / WEIGHTS_FILE, weights_only=True)
    clf = _classifier(model)
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    assert init_from_pretrained(clf, tmp_path, "tok", True) == lm.objective
    after = clf.state_dict()
    for key, value in saved.items():
        assert torch.equal(after[f"encoder.{key}"], value), key
        assert not torch.equal(before[f"encoder.{key}"], value), key
    for key in before:  # everything else (the head; the ffnn's document-window layers) keeps its own init
        if key.removeprefix("encoder.") not in saved:
            assert torch.equal(after[key], before[key]), key
    expected = {k for k in lm.encoder.state_dict() if model != "ffnn" or k.startswith(("embedding.", "proj."))}
    assert set(saved) == expected


def test_a_mismatched_tokenizer_or_encoder_is_a_one_line_error(tmp_path):
    lm = _lm("transformer")
    save_pretrained(tmp_path, lm, "transformer", OPTIONS["transformer"], "tok", {})
    with pytest.raises(ArtifactError, match="pretrained with tokenizer tok, not other") as err:
        init_from_pretrained(_classifier("transformer"), tmp_path, "other", True)
    assert "\n" not in str(err.value)
    with pytest.raises(ArtifactError, match="rerun `dvc repro pretrain`") as err:
        clf = Classifier(ModelConfig("transformer", V, D, ("a",), tokenizer_sha256="tok",
                                     encoder={**OPTIONS["transformer"], "layers": 2}))
        init_from_pretrained(clf, tmp_path, "tok", True)
    assert "\n" not in str(err.value)
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "format_version": 0}))
    with pytest.raises(ArtifactError, match="pretrain format 0"):
        read_meta(tmp_path)


@pytest.mark.parametrize("model", ["bag", "cnn"])
def test_word2vec_marker_for_bag_and_cnn(model, tmp_path):
    """word2vec is their pretraining: the marker takes over nothing, and asks for the word2vec embeddings."""
    with pytest.raises(ConfigError, match="word2vec as their pretraining"):
        build_language_model(model, {}, _vectors(), SMALL)
    save_marker(tmp_path, model, "tok")
    assert not (tmp_path / WEIGHTS_FILE).exists() and read_meta(tmp_path, "tok")["objective"] == "word2vec"
    options = {"bag": {"pooling": "mean", "word_ngrams": 0}, "cnn": {"widths": [2], "filters": 3}}[model]
    clf = Classifier(ModelConfig(model, V, D, ("a", "b"), tokenizer_sha256="tok", encoder=options), _vectors(5))
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    assert init_from_pretrained(clf, tmp_path, "tok", True) == "word2vec"
    assert all(torch.equal(v, before[k]) for k, v in clf.state_dict().items())
    with pytest.raises(ConfigError, match="train.embeddings is random"):
        init_from_pretrained(clf, tmp_path, "tok", False)
    with pytest.raises(ArtifactError, match=f"pretrained as {model}"):
        init_from_pretrained(_classifier("ffnn"), tmp_path, "tok", True)


def test_pretrain_config_checks_the_mask_split():
    with pytest.raises(ValueError, match="exceed 1"):
        PretrainConfig(mask_token=0.8, random_token=0.3)


def test_lm_pretrained_variant_takes_the_lm_encoder_and_a_new_head(tmp_path):
    from reprotext.transfer import from_language_model

    lm = _lm("rnn")
    save_pretrained(tmp_path, lm, "rnn", OPTIONS["rnn"], "tok", {})
    source = _classifier("rnn")  # stands for the source-trained model: only its architecture is used
    model = from_language_model(source, ["x", "y", "z"], 0.1, _vectors(5), tmp_path, "tok")
    assert model.config.labels == ("x", "y", "z") and model.head.net[-1].weight.shape[0] == 3
    for key, value in lm.transferable().items():
        assert torch.equal(model.encoder.state_dict()[key], value)


def test_gpu_pretrain_script_refuses_without_its_inputs(tmp_path):
    """bench/gpu_pretrain.sh runs elsewhere (no GPU here): it must at least parse and say what it lacks."""
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "bench").mkdir()
    shutil.copy(root / "bench/gpu_pretrain.sh", tmp_path / "bench")
    assert subprocess.run(["bash", "-n", str(tmp_path / "bench/gpu_pretrain.sh")]).returncode == 0
    proc = subprocess.run(["bash", str(tmp_path / "bench/gpu_pretrain.sh")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "data/tokens/source/train missing" in proc.stderr


@pytest.mark.parametrize("model", list(OPTIONS))
def test_bf16_mixed_precision_runs(model):
    """The GPU path's autocast (bf16-mixed), exercised on the CPU: finite losses and perplexities."""
    from reprotext.tokenizer import TokenArray

    stream = _topic_stream(2000)
    train = pack([TokenArray(stream[:1600].astype(np.int32), np.array([0, 1600]))], SMALL.seq_len)
    dev = pack([TokenArray(stream[1600:].astype(np.int32), np.array([0, 400]))], SMALL.seq_len)
    cfg = SMALL.model_copy(update={"precision": "bf16-mixed", "max_tokens": 2048})
    result = pretrain(_lm(model, cfg).train(), train, dev, cfg)
    assert all(np.isfinite(r["dev/perplexity"]) and np.isfinite(r["train/loss"]) for r in result.history)
    with pytest.raises(ConfigError, match="no CUDA device") if not torch.cuda.is_available() else nullcontext():
        pretrain(_lm(model, cfg), train, dev, cfg.model_copy(update={"accelerator": "gpu"}))


@pytest.mark.parametrize("model", list(OPTIONS))
def test_pretraining_repeats_for_a_seed(model):
    """Two runs with the same seed: the same history and the same weights, bit for bit (DVC trusts the outputs)."""
    from reprotext.tokenizer import TokenArray

    stream = _topic_stream(1200)
    train = pack([TokenArray(stream[:1000].astype(np.int32), np.array([0, 1000]))], SMALL.seq_len)
    dev = pack([TokenArray(stream[1000:].astype(np.int32), np.array([0, 200]))], SMALL.seq_len)
    cfg = SMALL.model_copy(update={"max_tokens": 1024, "dropout": 0.1})
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        lm = build_language_model(model, OPTIONS[model], _vectors(), cfg)
        result = pretrain(lm, train, dev, cfg)
        runs.append(([{k: v for k, v in r.items() if not k.startswith("throughput")} for r in result.history],
                     lm.transferable()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
