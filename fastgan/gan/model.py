"""GAN: a generator and a discriminator MLP trained against each other.

One training step is k discriminator steps, then one generator step:

* D step: fresh noise z, fakes G(z) (no G gradient needed); real and fake rows go through D
  in one pass of 2B rows; ``L_D = mean BCE(D(x), 1-s) + mean BCE(D(G(z)), 0)``; D's
  gradients, then D's optimizer.
* G step: fresh noise, G(z) through the *updated* D; the G loss's gradient flows back through
  D to G's output (D's input gradient only: D's own parameter gradients are not computed and
  D's optimizer is not called, so D is untouched), then through G; G's optimizer.

With batch norm inside D, the one-pass D step normalises over the combined real + fake batch,
as Keras' ``train_on_batch`` on the concatenated batch (seed 001) does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..backends.base import Backend
from ..errors import ConfigError
from ..nn.ema import WeightAverage
from ..nn.losses import discriminator_loss, generator_loss
from ..nn.mlp import MLP
from ..nn.optim import OptimizerConfig
from ..training import checkpoint, loop
from ..training.loop import DEFAULT_LOG_EVERY, Callback, DataOrder, History
from . import presets as _presets

SAMPLE_CHUNK = 256


def latent_noise(rng: np.random.Generator, kind: str, n: int, latent_dim: int) -> np.ndarray:
    """``n`` host latent vectors of noise ``kind``: N(0, 1) for "normal", else U[-1, 1)."""
    if kind == "normal":
        return rng.standard_normal((n, latent_dim))
    return rng.uniform(-1.0, 1.0, (n, latent_dim))


def stats_record(stats: np.ndarray) -> dict[str, float]:
    """The named statistics of a step from the six values of ``GAN.stats`` (host array)."""
    s = np.asarray(stats, dtype=float)
    return {"d_loss": float(s[0] + s[2]), "g_loss": float(s[4]), "d_real": float(s[1]),
            "d_fake": float(s[3])}


class GAN:
    """A generator/discriminator pair with their optimizers and training rule.

    ``ema_decay`` (e.g. 0.999) keeps an exponential moving average of the generator's weights,
    updated after every step; ``sample`` then draws from the averaged weights (bias-corrected:
    see :mod:`fastgan.nn.ema`).
    """

    def __init__(self, generator: MLP, discriminator: MLP, g_optimizer: OptimizerConfig,
                 d_optimizer: OptimizerConfig, *, noise: str = "normal", k: int = 1,
                 g_loss: str = "non_saturating", label_smoothing: float = 0.0,
                 batch_size: int = 64, seed: int | np.random.SeedSequence = 0,
                 ema_decay: float | None = None) -> None:
        if generator.backend is not discriminator.backend or generator.dtype != discriminator.dtype:
            raise ConfigError("generator and discriminator must share one backend and dtype")
        if generator.out_features != discriminator.in_features:
            raise ConfigError(f"generator emits {generator.out_features} features but the "
                              f"discriminator reads {discriminator.in_features}")
        if discriminator.out_features != 1:
            raise ConfigError("the discriminator must end in one unit (a logit), "
                              f"not {discriminator.out_features}")
        _presets.validate(SimpleNamespace(noise=noise, g_loss=g_loss, k=k, batch_size=batch_size,
                                          label_smoothing=label_smoothing,
                                          latent_dim=generator.in_features))
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer.bind(generator.params), \
            d_optimizer.bind(discriminator.params)
        self.noise, self.k, self.g_loss = noise, k, g_loss
        self.label_smoothing, self.batch_size = label_smoothing, batch_size
        seeds = (seed if isinstance(seed, np.random.SeedSequence)
                 else np.random.SeedSequence(seed)).spawn(3)
        self.noise_rng = self.backend.rng(seeds[0])
        self.sample_rng = np.random.Generator(np.random.PCG64(seeds[1]))
        self.data_order = DataOrder(seeds[2])
        self.ema = None if ema_decay is None else WeightAverage(generator.params, ema_decay)
        self.preset: _presets.Preset | None = None
        self.preset_overrides: dict[str, Any] = {}
        self.epoch = 0
        self.steps = 0
        # [d real loss, D(x), d fake loss, D(G(z)) in D step, g loss, D(G(z)) in G step]
        self.stats = self.backend.zeros((6,), self.dtype)
        self._workspaces: dict[int, SimpleNamespace] = {}
        self._sample_inputs: dict[int, Any] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, name: str, *, backend: str | Backend | None = None,
                    dtype: Any = "float32", seed: int = 0, data_dim: int = 784,
                    ema_decay: float | None = None, **overrides: Any) -> GAN:
        """Build preset ``name`` (see :mod:`fastgan.gan.presets`) for ``data_dim`` features.

        ``backend=None`` is the current default (numpy unless inside ``use_backend``);
        ``ema_decay`` None keeps the preset's (none but ``fast-mlp`` has one); ``overrides`` go
        to :func:`fastgan.gan.presets.get` and are kept in ``preset_overrides``.
        """
        if ema_decay is not None:
            overrides["ema_decay"] = ema_decay
        preset = _presets.get(name, data_dim, **overrides)
        g_seed, d_seed, gan_seed = np.random.SeedSequence(seed).spawn(3)
        generator = MLP(preset.generator, in_features=preset.latent_dim, backend=backend,
                        dtype=dtype, seed=g_seed)
        discriminator = MLP(preset.discriminator, in_features=data_dim,
                            backend=generator.backend, dtype=dtype, seed=d_seed)
        gan = cls(generator, discriminator, preset.g_optimizer, preset.d_optimizer,
                  noise=preset.noise, k=preset.k, g_loss=preset.g_loss,
                  label_smoothing=preset.label_smoothing, batch_size=preset.batch_size,
                  seed=gan_seed, ema_decay=preset.ema_decay)
        gan.preset = preset
        gan.preset_overrides = dict(overrides)
        return gan

    @property
    def backend(self) -> Backend:
        """The backend both networks run on."""
        return self.generator.backend

    @property
    def dtype(self) -> np.dtype:
        """The floating-point type of parameters and activations."""
        return self.generator.dtype

    @property
    def latent_dim(self) -> int:
        """Size of the generator's noise input."""
        return self.generator.in_features

    @property
    def data_dim(self) -> int:
        """Number of features of a sample."""
        return self.generator.out_features

    # ------------------------------------------------------------------ training
    def workspace(self, batch: int) -> SimpleNamespace:
        """Noise, D-input and loss-gradient arrays for batch size ``batch``."""
        ws = self._workspaces.get(batch)
        if ws is None:
            be, dt = self.backend, self.dtype
            ws = self._workspaces[batch] = SimpleNamespace(
                z=be.empty((batch, self.latent_dim), dt),
                d_input=be.empty((2 * batch, self.data_dim), dt),
                d_grad=be.empty((2 * batch, 1), dt),
                g_grad=be.empty((batch, 1), dt),
            )
        return ws

    def _draw_noise(self, out: Any) -> None:
        if self.noise == "normal":
            self.noise_rng.normal(out)
        else:
            self.noise_rng.uniform(out, -1.0, 1.0)

    def step(self, real_batch: Any) -> None:
        """One training step (k D steps, one G step) without reading anything back.

        ``real_batch`` holds k*B rows of ``data_dim`` features (host or backend array), or
        has shape (k, B, data_dim); each D step takes its own B rows.
        """
        if real_batch.ndim == 3:
            real_batch = real_batch.reshape(-1, real_batch.shape[-1])
        rows = real_batch.shape[0]
        shape_ok = real_batch.ndim == 2 and real_batch.shape[1] == self.data_dim
        if not shape_ok or rows % self.k or not rows:
            raise ConfigError(f"real batch must have k*B rows of {self.data_dim} features "
                              f"(k={self.k}); got shape {real_batch.shape}")
        batch = rows // self.k
        ws = self.workspace(batch)
        for i in range(self.k):
            self.discriminator_gradients(real_batch[i * batch:(i + 1) * batch], ws)
            self.d_optimizer.step(self.epoch)
        self.generator_gradients(ws)
        self.g_optimizer.step(self.epoch)
        if self.ema is not None:
            self.ema.update()
        self.steps += 1

    def discriminator_gradients(self, real: Any, ws: SimpleNamespace) -> None:
        """D's loss on B real rows and B fresh fakes, its gradients into D's flat buffer."""
        be, G, D, batch = self.backend, self.generator, self.discriminator, real.shape[0]
        be.copy(real, ws.d_input[:batch])
        self._draw_noise(ws.z)
        be.copy(G.forward(ws.z, training=True), ws.d_input[batch:])
        logits = D.forward(ws.d_input, training=True)
        discriminator_loss(be, logits, ws.d_grad, self.stats[0:4], self.label_smoothing)
        D.backward(ws.d_grad, input_grad=False)

    def generator_gradients(self, ws: SimpleNamespace) -> None:
        """G's loss on fresh fakes through D; gradients into G's buffer only (D's input
        gradient is the link; D's parameter gradients are skipped)."""
        G, D = self.generator, self.discriminator
        self._draw_noise(ws.z)
        logits = D.forward(G.forward(ws.z, training=True), training=True)
        generator_loss(self.backend, self.g_loss, logits, ws.g_grad, self.stats[4:6])
        G.backward(D.backward(ws.g_grad, input_grad=True, param_grads=False))

    def last_stats(self) -> dict[str, float]:
        """Losses and mean D outputs of the last step (one small device-to-host read)."""
        return stats_record(self.backend.to_numpy(self.stats))

    def train_step(self, real_batch: Any) -> dict[str, float]:
        """One training step; returns ``d_loss``, ``g_loss``, ``d_real`` = mean D(x) and
        ``d_fake`` = mean D(G(z)) (both from the D step)."""
        self.step(real_batch)
        return self.last_stats()

    def fit(self, dataset: Any, *, epochs: int | None = None, steps: int | None = None,
            callbacks: Iterable[Callback] = (), log_every: int = DEFAULT_LOG_EVERY,
            sampling: str = "epoch") -> History:
        """Train on ``dataset`` (a :class:`fastgan.data.Dataset` or an (N, data_dim) array) for
        ``epochs`` more epochs or ``steps`` more steps, as :func:`fastgan.training.loop.fit` does:
        the data on the device, shuffled full batches (``sampling="epoch"``) or batches drawn
        with replacement (``"random"``), statistics read and checked every ``log_every``
        steps, ``callbacks`` (:class:`fastgan.training.loop.Callback`) told of each event."""
        return loop.fit(self, dataset, epochs=epochs, steps=steps, callbacks=callbacks,
                            log_every=log_every, sampling=sampling)

    def save(self, path: str | os.PathLike[str], *,
             extra: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint, with the caller's ``extra`` JSON values (see
        :func:`fastgan.training.checkpoint.save`); ``fastgan.load`` reads it."""
        return checkpoint.save(self, path, extra=extra)

    # ------------------------------------------------------------------ sampling
    def draw_noise(self, n: int) -> np.ndarray:
        """``n`` latent vectors of this GAN's noise kind, from its own sampling stream."""
        return latent_noise(self.sample_rng, self.noise, n, self.latent_dim)

    def sample(self, n: int, noise: np.ndarray | None = None) -> np.ndarray:
        """``n`` generated samples as a host array of shape (n, data_dim), in [-1, 1] for a
        tanh output. The generator runs in evaluation mode (batch norm uses running
        statistics), with the averaged weights when ``ema_decay`` is set; ``noise``
        (n, latent_dim) fixes the inputs."""
        if self.ema is None:
            return self._generate(n, noise)
        with self.ema.swapped_in(self.steps):
            return self._generate(n, noise)

    def _generate(self, n: int, noise: np.ndarray | None) -> np.ndarray:
        noise = self.draw_noise(n) if noise is None else np.asarray(noise)
        if noise.ndim != 2 or noise.shape[1] != self.latent_dim:
            raise ConfigError(f"noise must have shape (n, {self.latent_dim}), got {noise.shape}")
        n = noise.shape[0]
        out = np.empty((n, self.data_dim), dtype=self.dtype)
        chunk = min(n, SAMPLE_CHUNK)
        if chunk == 0:
            return out
        inputs = self._sample_inputs.get(chunk)
        if inputs is None:
            inputs = self._sample_inputs[chunk] = self.backend.zeros((chunk, self.latent_dim),
                                                                     self.dtype)
        for start in range(0, n, chunk):
            part = noise[start:start + chunk]
            self.backend.copy(part, inputs[:len(part)])
            images = self.generator.forward(inputs, training=False)
            out[start:start + len(part)] = self.backend.to_numpy(images[:len(part)])
        return out

    def __repr__(self) -> str:
        name = self.preset.name if self.preset else "custom"
        return (f"GAN({name}: G {self.generator.n_params:,} params, "
                f"D {self.discriminator.n_params:,} params, backend={self.backend.name}, "
                f"dtype={self.dtype.name})")
