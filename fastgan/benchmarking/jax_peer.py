"""JAX peer: a fastgan :class:`~fastgan.gan.config.GANConfig` trained by fastgan's algorithm,
written the way a JAX user would write it: parameters as pytrees, pure functions, ``jax.grad``,
``optax``, and the whole step (k D updates, then the G update) compiled by XLA in one
``jax.jit``.

It does the work of the PyTorch peer (:mod:`fastgan.benchmarking.torch_peer`), step for step:

* D step (k times, each on its own B rows of the k*B real batch): fresh noise z, fakes
  ``G(z)`` with no gradient, one D pass over the 2B rows ``[real; fake]`` in training mode,
  ``L_D = mean BCE(D(x), 1 - s) + mean BCE(D(G(z)), 0)``, D's optimizer.
* G step: fresh noise, ``L_G = mean BCE(D(G(z)), 1)`` (non-saturating) or
  ``-mean BCE(D(G(z)), 0)`` (minimax), gradients for G's parameters only, G's optimizer.

Both networks stay in training mode (dropout active, batch norm on batch statistics, its
running averages updated). Learning-rate schedules are held at their epoch-0 value. Dense
networks only: a configuration with convolutions is refused.

Threads: XLA sizes its pools when ``jax`` is first imported and runs independent operations
of a step at once, whatever its flags say, so the benchmark bounds it (and every other
contender) by the CPUs the process may use (:func:`fastgan.threads.pin_cpus`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import BackendUnavailable, ConfigError, FastganError
from ..gan.config import GANConfig
from ..nn.optim import SGD, Adam, OptimizerConfig
from ..nn.specs import Activation, BatchNorm, Dense, Dropout, LayerSpec
from .peer_rule import check_trainable

try:
    import jax
    import jax.numpy as jnp
    import optax
except ImportError as exc:
    raise BackendUnavailable(
        f"the JAX peer needs jax and optax, which cannot be imported here ({exc}); "
        "install them with: pip install 'fastgan[compare]'"
    ) from exc

Params = list[dict[str, Any]]
"""One dict per layer: a dense layer's ``w`` (in, out) and ``b``, a batch norm's ``gamma``
and ``beta``; other layers hold none."""
Forward = Callable[[Params, Params, Any, Any], tuple[Any, Params]]
"""``(params, running, x, key) -> (y, running)``: a network in training mode."""


# ---------------------------------------------------------------- networks from layer specs
def _activate(name: str, alpha: float, x: Any) -> Any:
    """Activation ``name`` applied to ``x`` (identity for "identity")."""
    if name == "relu":
        return jax.nn.relu(x)
    if name == "leaky_relu":
        return jax.nn.leaky_relu(x, alpha)
    if name == "tanh":
        return jnp.tanh(x)
    if name == "sigmoid":
        return jax.nn.sigmoid(x)
    return x


def _dense_init(spec: Dense, fan_in: int, key: Any, dtype: Any) -> dict[str, Any]:
    """W (fan_in, units) and b by fastgan's rule ``spec.init`` (as the PyTorch peer's)."""
    shape, units = (fan_in, spec.units), spec.units
    w_key, b_key = jax.random.split(key)
    if spec.init == "he_normal":
        w = jax.random.normal(w_key, shape, dtype) * math.sqrt(2.0 / fan_in)
    elif spec.init == "glorot_uniform":
        limit = math.sqrt(6.0 / (fan_in + units))
        w = jax.random.uniform(w_key, shape, dtype, -limit, limit)
    else:                                            # torch_default: U(+-1/sqrt(fan_in))
        limit = 1.0 / math.sqrt(fan_in)
        return {"w": jax.random.uniform(w_key, shape, dtype, -limit, limit),
                "b": jax.random.uniform(b_key, (units,), dtype, -limit, limit)}
    return {"w": w, "b": jnp.zeros((units,), dtype)}


def build_network(layers: Sequence[LayerSpec], in_features: int, key: Any, dtype: Any
                  ) -> tuple[Params, Params, Forward]:
    """The parameters, the batch norms' running statistics and the training-mode forward of
    the dense network ``layers`` on ``in_features`` inputs."""
    params: Params = []
    running: Params = []
    width = in_features
    for spec in layers:
        key, layer_key = jax.random.split(key)
        if isinstance(spec, Dense):
            params.append(_dense_init(spec, width, layer_key, dtype))
            width = spec.units
        elif isinstance(spec, BatchNorm):
            params.append({"gamma": jnp.ones((width,), dtype), "beta": jnp.zeros((width,), dtype)})
        elif isinstance(spec, Activation | Dropout):
            params.append({})
        else:
            raise ConfigError(f"the JAX peer builds dense networks only, not {spec!r}")
        running.append({"mean": jnp.zeros((width,), dtype), "var": jnp.ones((width,), dtype)}
                       if isinstance(spec, BatchNorm) else {})

    def forward(params: Params, running: Params, x: Any, key: Any) -> tuple[Any, Params]:
        updated = []
        for spec, p, stats in zip(layers, params, running, strict=True):
            if isinstance(spec, Dense):
                x = _activate(spec.activation, spec.alpha, x @ p["w"] + p["b"])
            elif isinstance(spec, Activation):
                x = _activate(spec.name, spec.alpha, x)
            elif isinstance(spec, Dropout):
                key, mask_key = jax.random.split(key)
                keep = jax.random.bernoulli(mask_key, 1.0 - spec.rate, x.shape)
                x = jnp.where(keep, x / (1.0 - spec.rate), 0.0)
            else:                                    # BatchNorm on the batch's statistics
                mean, var = x.mean(axis=0), x.var(axis=0)
                x = (x - mean) / jnp.sqrt(var + spec.eps) * p["gamma"] + p["beta"]
                n = x.shape[0]
                stats = {"mean": spec.momentum * stats["mean"] + (1 - spec.momentum) * mean,
                         "var": spec.momentum * stats["var"]
                         + (1 - spec.momentum) * var * n / (n - 1)}
            updated.append(stats)
        return x, updated

    return params, running, forward


def build_optimizer(config: OptimizerConfig) -> optax.GradientTransformation:
    """The ``optax`` optimizer for ``config`` at its epoch-0 learning rate."""
    lr = config.lr * config.schedule.factor(0)
    if isinstance(config, Adam):
        return optax.adam(lr, b1=config.beta1, b2=config.beta2, eps=config.eps)
    if isinstance(config, SGD):
        return optax.sgd(lr, momentum=config.momentum or None)
    raise ConfigError(f"the JAX peer has no optimizer for {config!r}")


# ---------------------------------------------------------------- the GAN
class JaxGAN:
    """A JAX generator/discriminator pair built from ``config``, trained like fastgan.

    ``step(real)`` runs one jitted training step and waits for it (XLA dispatches
    asynchronously; a step that returned early would be timed short); ``stats()`` reads the
    last step's losses. The first call compiles (seconds), so warm up before timing.
    """

    def __init__(self, config: GANConfig, *, dtype: Any = "float32", seed: int = 0) -> None:
        check_trainable(config, "JAX")
        if dtype not in ("float32", np.float32):
            raise ConfigError(f"the JAX peer runs float32 only (JAX's default), not {dtype!r}")
        self.config = config
        g_key, d_key, self._key = jax.random.split(jax.random.PRNGKey(seed), 3)
        g_params, g_running, self._generator = build_network(
            config.generator, config.latent_dim, g_key, jnp.float32)
        d_params, d_running, self._discriminator = build_network(
            config.discriminator, config.data_dim, d_key, jnp.float32)
        self._g_optimizer = build_optimizer(config.g_optimizer)
        self._d_optimizer = build_optimizer(config.d_optimizer)
        self.state = {"g": g_params, "d": d_params, "g_running": g_running,
                      "d_running": d_running, "g_opt": self._g_optimizer.init(g_params),
                      "d_opt": self._d_optimizer.init(d_params), "key": self._key,
                      "stats": jnp.zeros(4, jnp.float32)}
        self._step = jax.jit(self._train_step, donate_argnums=0)
        self.steps = 0

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters of each network."""
        def count(params: Params) -> int:
            return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params))
        return {"generator": count(self.state["g"]), "discriminator": count(self.state["d"])}

    def make_batch(self, data: Any = None) -> Any:
        """A real batch of k*B rows (``data``, or uniform on [-1, 1]) as a JAX array."""
        c = self.config
        if data is None:
            data = np.random.default_rng(0).uniform(-1, 1, (c.k * c.batch_size, c.data_dim))
        return jnp.asarray(np.asarray(data, np.float32).reshape(-1, c.data_dim))

    def _noise(self, key: Any, batch: int) -> Any:
        shape = (batch, self.config.latent_dim)
        if self.config.noise == "uniform":
            return jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0)
        return jax.random.normal(key, shape, jnp.float32)

    def _d_loss(self, d_params: Params, d_running: Params, rows: Any, key: Any
                ) -> tuple[Any, tuple[Any, Params]]:
        """D's loss on ``rows`` = [B real; B fake], with its logits and running statistics."""
        batch = rows.shape[0] // 2
        logits, d_running = self._discriminator(d_params, d_running, rows, key)
        bce = optax.sigmoid_binary_cross_entropy
        loss = (bce(logits[:batch], 1.0 - self.config.label_smoothing).mean()
                + bce(logits[batch:], 0.0).mean())
        return loss, (logits, d_running)

    def _g_loss(self, g_params: Params, state: dict[str, Any], z: Any, g_key: Any, d_key: Any
                ) -> tuple[Any, Params]:
        """G's loss through D (its parameters fixed) on the fakes of noise ``z``, with G's
        running statistics."""
        fake, g_running = self._generator(g_params, state["g_running"], z, g_key)
        logits, _ = self._discriminator(state["d"], state["d_running"], fake, d_key)
        bce = optax.sigmoid_binary_cross_entropy
        if self.config.g_loss == "minimax":
            return -bce(logits, 0.0).mean(), g_running
        return bce(logits, 1.0).mean(), g_running

    def _train_step(self, state: dict[str, Any], real: Any) -> dict[str, Any]:
        """k D updates, each on its B rows of ``real``, then one G update: the new state."""
        c = self.config
        batch = real.shape[0] // c.k
        key = state["key"]
        for i in range(c.k):
            key, noise_key, fake_key, mask_key = jax.random.split(key, 4)
            fake, g_running = self._generator(state["g"], state["g_running"],
                                              self._noise(noise_key, batch), fake_key)
            rows = jnp.concatenate([real[i * batch:(i + 1) * batch],
                                    jax.lax.stop_gradient(fake)])
            (d_value, (logits, d_running)), grads = jax.value_and_grad(
                self._d_loss, has_aux=True)(state["d"], state["d_running"], rows, mask_key)
            updates, d_opt = self._d_optimizer.update(grads, state["d_opt"], state["d"])
            state = {**state, "d": optax.apply_updates(state["d"], updates), "d_opt": d_opt,
                     "g_running": g_running, "d_running": d_running}
        key, noise_key, g_key, d_key = jax.random.split(key, 4)
        (g_value, g_running), grads = jax.value_and_grad(self._g_loss, has_aux=True)(
            state["g"], state, self._noise(noise_key, batch), g_key, d_key)
        updates, g_opt = self._g_optimizer.update(grads, state["g_opt"], state["g"])
        probabilities = jax.nn.sigmoid(logits)
        stats = jnp.stack([d_value, g_value, probabilities[:batch].mean(),
                           probabilities[batch:].mean()])
        return {**state, "g": optax.apply_updates(state["g"], updates), "g_opt": g_opt,
                "g_running": g_running, "key": key, "stats": stats}

    def step(self, real: Any) -> None:
        """One training step (k D steps, then one G step), waited for."""
        c = self.config
        if real.ndim != 2 or real.shape[1] != c.data_dim or real.shape[0] != c.k * c.batch_size:
            raise ConfigError(f"real batch must have k*B = {c.k * c.batch_size} rows of "
                              f"{c.data_dim} features; got shape {tuple(real.shape)}")
        self.state = self._step(self.state, real)
        jax.block_until_ready(self.state["stats"])
        self.steps += 1

    def stats(self) -> dict[str, float]:
        """Losses and mean D outputs of the last step."""
        if not self.steps:
            raise FastganError("no training step has run yet: call step() first")
        values = np.asarray(self.state["stats"]).tolist()
        return dict(zip(("d_loss", "g_loss", "d_real", "d_fake"), values, strict=True))
