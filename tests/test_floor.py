"""The step floor: which GEMMs a training step makes, their flops, the optimizer's traffic,
and a smoke run of the measurement (no timing assertions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.small_presets import (
    SMALL_CONVOLUTIONAL,
    transposed_config,
    transposed_discriminator,
)

from fastgan import GAN
from fastgan.benchmarking import floor
from fastgan.errors import ConfigError
from fastgan.gan import presets
from fastgan.nn.optim import SGD

STATED_COUNTS = {  # trainable (G, D) parameters for 784 features (keras-dcgan: 32 x 32)
    "numpy-mlp": (114_064, 100_609),
    "keras-mlp": (1_495_568, 533_505),
    "numpy-adam": (572_584, 100_609),
    "pytorch-vanilla": (1_486_352, 1_460_225),
    "keras-dcgan": (1_434_753, 386_049),
}


@pytest.mark.parametrize("name", STATED_COUNTS)
def test_parameter_counts(name):
    p = presets.get(name, data_dim=1024 if name == "keras-dcgan" else 784)
    counts = (floor.parameter_count(p.generator, p.latent_dim),
              floor.parameter_count(p.discriminator, p.data_dim))
    assert counts == STATED_COUNTS[name]


def test_pytorch_vanilla_step_has_34_gemms_of_the_right_shapes():
    shapes = floor.step_gemm_shapes(presets.get("pytorch-vanilla"), 100)
    assert len(shapes) == 34
    by_role = {role: (m, n, k) for m, n, k, role in shapes}
    assert len(by_role) == 34
    assert by_role["d_step[0].G.forward[0]"] == (100, 256, 100)  # z (100, 100) @ W (100, 256)
    assert by_role["d_step[0].D.forward[0]"] == (200, 1024, 784)  # [real; fake] in one pass
    assert by_role["d_step[0].D.grad_weight[0]"] == (784, 1024, 200)  # x^T dy
    assert by_role["d_step[0].D.grad_input[1]"] == (200, 1024, 512)  # dy W^T
    assert "d_step[0].D.grad_input[0]" not in by_role  # real images need no gradient
    assert by_role["g_step.D.forward[0]"] == (100, 1024, 784)
    assert by_role["g_step.D.grad_input[0]"] == (100, 784, 1024)  # flows on into G
    assert not any(role.startswith("g_step.D.grad_weight") for role in by_role)
    assert by_role["g_step.G.grad_weight[3]"] == (1024, 784, 100)
    assert "g_step.G.grad_input[0]" not in by_role
    assert [role for *_, role in shapes[:4]] == [f"d_step[0].G.forward[{i}]" for i in range(4)]


@pytest.mark.parametrize("name", presets.names())
@pytest.mark.parametrize("k", [1, 3])
def test_gemm_count_and_flops_follow_the_algorithm(name, k):
    """With P = sum(rows * in * out) over a network's weight layers (rows: output pixels of a
    Conv2D, 1 for Dense) and f = its first layer's term, each D step multiplies
    B (P_G + 2 P_D + 2 P_D + 2 (P_D - f_D)) terms (G forward; D forward, dW, dx on 2B rows)
    and the G step B (P_G + P_D + P_D + P_G + P_G - f_G) (G forward, D forward, D dx, G dW,
    G dx)."""
    batch = 32
    p = presets.get(name, data_dim=64 if name in SMALL_CONVOLUTIONAL else 20, k=k)
    g = floor.weight_shapes(p.generator, p.generator_inputs)         # noise (+ one-hot label)
    d = floor.weight_shapes(p.discriminator, p.discriminator_inputs)  # sample (+ label)
    p_g, p_d = (sum(r * i * o for r, i, o in shapes) for shapes in (g, d))
    f_g, f_d = math.prod(g[0]), math.prod(d[0])
    terms = batch * (k * (p_g + 6 * p_d - 2 * f_d) + 3 * p_g + 2 * p_d - f_g)
    gemms = floor.step_gemms(p, batch)
    assert sum(x.flops for x in gemms) == 2 * terms
    assert len(gemms) == k * (len(g) + 3 * len(d) - 1) + 3 * len(g) + 2 * len(d) - 1


def test_transposed_convolutions_are_gemms_over_input_pixels():
    """A ConvTranspose2D multiplies its (pixels, C) input rows by W^T (C, k^2 filters); its
    parameters are that matrix and one bias per filter, as fastgan's networks hold them."""
    config = transposed_config(discriminator=transposed_discriminator(8, (4, 4, 6)))
    g = floor.weight_shapes(config.generator, config.latent_dim)
    assert g[1:] == [(2 * 2, 6, 16 * 4), (4 * 4, 4, 9 * 1)]     # 2x2x6 -> 4x4x4 -> 8x8x1
    assert floor.weight_shapes(config.discriminator, 64)[0] == (8 * 8, 1, 9 * 4)
    gan = GAN(config)
    assert floor.parameter_count(config.generator, config.latent_dim) == gan.generator.n_params
    assert floor.parameter_count(config.discriminator, 64) == gan.discriminator.n_params
    by_role = {role: (m, n, k) for m, n, k, role in floor.step_gemm_shapes(config, 8)}
    assert by_role["g_step.G.forward[1]"] == (8 * 2 * 2, 16 * 4, 6)


def test_keras_dcgan_convolutions_are_gemms_over_output_pixels():
    by_role = {role: (m, n, k) for m, n, k, role in
               floor.step_gemm_shapes(presets.get("keras-dcgan", data_dim=1024), 64)}
    assert by_role["d_step[0].D.forward[0]"] == (128 * 32 * 32, 64, 9)      # 3x3x1 patches
    assert by_role["d_step[0].D.forward[2]"] == (128 * 8 * 8, 256, 9 * 128)  # stride 2
    assert by_role["d_step[0].D.forward[3]"] == (128, 1, 8 * 8 * 256)        # the logit
    assert by_role["g_step.G.grad_weight[2]"] == (9 * 128, 64, 64 * 32 * 32)
    assert by_role["g_step.G.grad_input[1]"] == (64 * 16 * 16, 9 * 256, 128)


def test_optimizer_traffic():
    vanilla = presets.get("pytorch-vanilla")
    assert floor.optimizer_bytes(vanilla, 4) == 4 * 7 * (1_486_352 + 1_460_225)
    mlp = presets.get("numpy-mlp")
    assert floor.optimizer_bytes(mlp, 8) == 8 * 3 * (114_064 + 100_609)
    momentum = presets.get("numpy-mlp", g_optimizer=SGD(0.01, momentum=0.9), k=2)
    assert floor.optimizer_bytes(momentum, 4) == 4 * (5 * 114_064 + 2 * 3 * 100_609)


def test_operands_are_laid_out_as_a_backward_pass_has_them():
    p = presets.get("pytorch-vanilla", data_dim=20, g_hidden=(8, 16), d_hidden=(16, 8))
    gemms = floor.step_gemms(p, 5)
    operands = floor.gemm_operands(p, 5, "float64")
    assert len(operands) == len(gemms)
    weights = {}
    for g, (a, b, c) in zip(gemms, operands, strict=True):
        assert a.shape == (g.m, g.k) and b.shape == (g.k, g.n) and c.shape == (g.m, g.n)
        assert a.dtype == b.dtype == c.dtype == np.float64
        assert np.all(a != 0) and np.all(b != 0)
        if g.kind == "grad_weight":
            assert a.base is not None and a.T.flags.c_contiguous  # x^T of a stored x
        if g.kind == "grad_input":
            assert b.T.flags.c_contiguous  # W^T of a stored W (in, out)
        if g.kind != "grad_weight":  # one W per layer, shared by its forward and dx GEMMs
            w = b if g.kind == "forward" else b.base
            assert weights.setdefault((g.network, g.layer), w) is w
    assert len(weights) == 3 + 3


def test_measure_gemm_floor_smoke():
    result = floor.measure_gemm_floor(presets.get("tiny", data_dim=2), 16, repeats=2, threads=1)
    p = presets.get("tiny", data_dim=2)
    assert result["n_gemms"] == len(floor.step_gemms(p, 16))
    assert result["flops"] == sum(g.flops for g in floor.step_gemms(p, 16))
    assert result["optimizer_bytes"] == floor.optimizer_bytes(p, 4)
    for key in ("gemm_ms", "gemm_gflops", "bandwidth_gbs", "optimizer_ms", "floor_ms"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["floor_ms"] == pytest.approx(result["gemm_ms"] + result["optimizer_ms"])


def test_measure_bandwidth_is_positive():
    assert floor.measure_bandwidth(2**20, "float64", repeats=2) > 0


def test_bandwidth_on_threads_adds_every_part(monkeypatch):
    """Two threads split the arrays into two contiguous parts that cover them once."""
    added: list[int] = []
    real_add = np.add
    monkeypatch.setattr(floor.np, "add", lambda a, b, out: added.append(a.size)
                        or real_add(a, b, out=out))
    assert floor.measure_bandwidth(4 * 1001, "float32", repeats=1, threads=2) > 0
    assert added == [500, 501] * 2                    # warm-up and one timed pass
    with pytest.raises(ConfigError, match="threads"):
        floor.measure_bandwidth(threads=0)


def test_bad_arguments_are_clear_errors():
    tiny = presets.get("tiny")
    with pytest.raises(ConfigError, match="batch size"):
        floor.step_gemms(tiny, 0)
    with pytest.raises(ConfigError, match="dtype"):
        floor.gemm_operands(tiny, 4, "float16")
    with pytest.raises(ConfigError, match="dtype"):
        floor.measure_bandwidth(dtype="not-a-dtype")
    with pytest.raises(ConfigError, match="repeats"):
        floor.measure_gemm_floor(tiny, 4, repeats=0)
    with pytest.raises(ConfigError, match="threads"):
        floor.measure_gemm_floor(tiny, 4, threads=0)


# ---------------------------------------------------------------- the graph floor
def test_stages_pair_each_backwards_weight_and_input_gradients():
    gemms = floor.step_gemms(presets.get("pytorch-vanilla"), 100)
    stages = floor.gemm_stages(gemms)
    assert sorted(i for stage in stages for i in stage) == list(range(len(gemms)))
    pairs = [[gemms[i].role for i in stage] for stage in stages if len(stage) > 1]
    assert pairs == [[f"{step}.{net}.grad_weight[{i}]", f"{step}.{net}.grad_input[{i}]"]
                     for step, net in (("d_step[0]", "D"), ("g_step", "G")) for i in (3, 2, 1)]
    assert len(stages) == len(gemms) - len(pairs)


def test_graph_floor_is_the_larger_of_critical_path_and_work_at_the_threads_rate():
    """A made-up graph: GEMM 0 alone, then 1 and 2 side by side, then 3 alone. Two copies of
    GEMM 0 took 1.25 s side by side: the two threads together reach 2 x 10 / 1.25 = 16 flop/s
    at best (not twice the 10 flop/s one thread reached; no GEMM's fastest way, which may
    use both threads, went faster); GEMMs run at best in the given times."""
    flops = [10, 20, 20, 5]
    one_thread = [1.0, 4.0, 2.0, 1.0]            # rates 10, 5, 10, 5 flop/s
    copies = [1.25, 5.0, 4.0, 1.0]               # together 16, 8, 10, 10 flop/s
    fastest = [0.8, 2.5, 1.6, 1.0]               # 12.5, 8, 12.5, 5 flop/s
    stages = [[0], [1, 2], [3]]
    two = floor.graph_floor(flops, fastest, copies, stages, 2)
    assert two["together_flops"] == 16
    assert two["critical_path_s"] == pytest.approx(0.8 + 2.5 + 1.0)
    assert two["work_s"] == pytest.approx(55 / 16)
    assert two["floor_s"] == two["critical_path_s"]
    # A GEMM run faster by a way than its copies suggest: the rate it reached counts.
    quick = floor.graph_floor(flops, [0.5, 2.5, 1.6, 1.0], copies, stages, 2)
    assert quick["together_flops"] == 20 and quick["work_s"] == pytest.approx(55 / 20)
    one = floor.graph_floor(flops, one_thread, one_thread, stages, 1)   # copies of one: itself
    assert one["critical_path_s"] == pytest.approx(1.0 + 4.0 + 1.0)
    assert one["work_s"] == pytest.approx(5.5) and one["floor_s"] == pytest.approx(6.0)
    wide = floor.graph_floor(flops, [0.1, 0.2, 0.2, 0.1], one_thread, stages, 4)  # 100 flop/s
    assert wide["together_flops"] == 100
    assert wide["floor_s"] == wide["work_s"] == pytest.approx(55 / 100)
    with pytest.raises(ConfigError, match="threads"):
        floor.graph_floor(flops, fastest, copies, stages, 0)


def test_measure_graph_floor_smoke():
    result = floor.measure_graph_floor(presets.get("tiny", data_dim=2), 16, 2, repeats=1)
    for key in ("critical_path_ms", "work_ms", "together_gflops", "gemm_ms"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["gemm_ms"] == max(result["critical_path_ms"], result["work_ms"])
