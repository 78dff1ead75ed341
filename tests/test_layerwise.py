"""The layer-wise diagnostic on tiny random models built here: a model against itself gives
zeros, noise put into one layer is found at that layer by every family, and the derivative
estimators match closed forms on linear and quadratic functions."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness_plugins.layerwise import _measures as m  # noqa: E402
from harness_plugins.layerwise._diagnose import FAMILIES  # noqa: E402
from harness_plugins.layerwise._diagnose import ProbeOptions  # noqa: E402
from harness_plugins.layerwise._diagnose import diagnose  # noqa: E402
from harness_plugins.layerwise._diagnose import most_divergent  # noqa: E402
from harness_plugins.layerwise._llama import LlamaConfig  # noqa: E402
from harness_plugins.layerwise._llama import random_llama  # noqa: E402

TINY = LlamaConfig(vocab=48, dim=24, layers=4, heads=4, kv_heads=2, ffn=40, rope_base=100.0)
IDS = [1, 7, 3, 9, 22, 5, 17, 30, 2, 11, 40, 8]
OPTIONS = ProbeOptions(hutchinson_samples=6, seed=3)


def _noisy(model: torch.nn.Module, block: int, scale: float = 0.05) -> torch.nn.Module:
    """A copy of ``model`` with Gaussian noise on every weight of one block."""
    changed = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for param in changed.blocks[block].parameters():
            noise = torch.randn(param.shape, generator=generator, dtype=param.dtype)
            param.add_(scale * param.abs().mean() * noise)
    return changed


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
    result = diagnose(model, _noisy(model, block), IDS, OPTIONS)
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
    small = diagnose(model, _noisy(model, 1, 0.01), IDS, OPTIONS)["layers"][2]
    large = diagnose(model, _noisy(model, 1, 0.1), IDS, OPTIONS)["layers"][2]
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
