"""PyTorch peer: any fastgan :class:`~fastgan.gan.config.GANConfig` trained by fastgan's algorithm,
written the way a PyTorch user would write it (autograd, ``nn.Module``, ``torch.optim``).

It exists to be timed side by side with fastgan's backends, so it does exactly the same work:

* D step (k times, each on its own B rows of the k*B real batch): fresh noise z (normal, or
  uniform on [-1, 1]), fakes ``G(z)`` under ``torch.no_grad()``, one D pass over the 2B rows
  ``[real; fake]`` in training mode, ``L_D = mean BCE(D(x), 1 - s) + mean BCE(D(G(z)), 0)``,
  backward, D's optimizer.
* G step: fresh noise, ``D(G(z))`` with D in training mode but D's parameters not requiring
  grad (so, like fastgan, no D weight gradient is computed: only D's input gradient flows to
  G), ``L_G = mean BCE(l, 1)`` (non-saturating) or ``-mean BCE(l, 0)`` (minimax), backward,
  G's optimizer.
* With the preset's ``ema_decay``, G's weights are averaged after the G step, as fastgan's
  :class:`~fastgan.nn.ema.WeightAverage` does (one ``torch._foreach_lerp_``), and
  :meth:`TorchGAN.sample` draws from the average.

Both networks stay in training mode throughout (dropout active, batch norm on batch
statistics), as in fastgan. Learning-rate schedules are held at their epoch-0 value.
``d_real`` and ``d_fake`` in :meth:`TorchGAN.stats` are the mean D(x) and D(G(z)) of the last
D step, as fastgan reports them.

Seeding: the constructor calls ``torch.manual_seed(seed)``; initial weights, noise and dropout
masks come from torch's global generator, so two peers built with one seed and stepped alike
agree, but they do not reproduce fastgan's own random streams.

Threads: call :func:`set_threads` (``torch.set_num_threads``) before timing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..backends.base import resolve_dtype
from ..errors import BackendUnavailable, ConfigError, FastganError
from ..gan.config import GANConfig
from ..nn.optim import SGD, Adam, OptimizerConfig
from ..nn.specs import (
    Activation,
    BatchNorm,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    Flatten,
    LayerSpec,
    Reshape,
    UpSampling2D,
    output_shapes,
)
from .peer_rule import check_trainable

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError as exc:
    raise BackendUnavailable(
        f"the PyTorch peer needs torch, which cannot be imported here ({exc}); "
        "install it with: pip install 'fastgan[compare]'"
    ) from exc

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def set_threads(n: int) -> None:
    """Let torch's intra-op pool use ``n`` threads (call before timing)."""
    if not (isinstance(n, int) and n >= 1):
        raise ConfigError(f"thread count must be a positive integer, got {n!r}")
    torch.set_num_threads(n)


def _dtype(dtype: Any) -> torch.dtype:
    """The torch dtype for a name, NumPy dtype or torch dtype; ConfigError if unsupported."""
    if dtype in DTYPES.values():
        return dtype
    return DTYPES[resolve_dtype(dtype).name]


def _device(device: str) -> torch.device:
    """The torch device; a clear error for a malformed name or a CUDA that is not there."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"bad torch device {device!r} ({exc}); use 'cpu' or 'cuda'") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("device 'cuda' was asked for, but this torch sees no CUDA "
                                 "device; use device='cpu'")
    return parsed


# ---------------------------------------------------------------- networks from layer specs
def _activation(name: str, alpha: float) -> nn.Module | None:
    """The module applying activation ``name``, or None for identity."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(alpha)
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    return None


def _initialise(layer: nn.Linear | nn.Conv2d | nn.ConvTranspose2d, init: str) -> None:
    """Apply fastgan's init ``init`` to ``layer`` (torch stores W as (out, in, ...), a
    transposed convolution's as (in, out, ...); its fans count the receptive field as
    fastgan's do)."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
    with torch.no_grad():
        if init == "he_normal":
            layer.weight.normal_(0.0, math.sqrt(2.0 / fan_in))
            layer.bias.zero_()
        elif init == "glorot_uniform":
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            layer.weight.uniform_(-limit, limit)
            layer.bias.zero_()
        # torch_default: the layer's own reset_parameters, W and b ~ U(+-1/sqrt(fan_in)).


def _module(spec: LayerSpec, in_shape: tuple[int, ...]) -> list[nn.Module]:
    """The modules doing ``spec``'s job on an input of fastgan shape ``in_shape``."""
    if isinstance(spec, Dense | Conv2D | ConvTranspose2D):
        modules: list[nn.Module]
        if isinstance(spec, Dense):
            modules = [nn.Linear(in_shape[0], spec.units)]
        elif isinstance(spec, Conv2D):
            modules = conv2d(spec, in_shape)
        else:
            modules = conv_transpose(spec, in_shape)
        _initialise(next(m for m in modules if hasattr(m, "weight")), spec.init)
        activation = _activation(spec.activation, spec.alpha)
        return modules if activation is None else [*modules, activation]
    if isinstance(spec, Activation):
        activation = _activation(spec.name, spec.alpha)
        return [] if activation is None else [activation]
    if isinstance(spec, BatchNorm):
        norm = nn.BatchNorm1d if len(in_shape) == 1 else nn.BatchNorm2d
        return [norm(in_shape[-1], eps=spec.eps, momentum=1.0 - spec.momentum)]
    if isinstance(spec, Dropout):
        return [nn.Dropout(spec.rate)]
    if isinstance(spec, Reshape):
        height, width, channels = spec.shape
        return [nn.Unflatten(1, (channels, height, width))]
    if isinstance(spec, Flatten):
        return [nn.Flatten()]
    if isinstance(spec, UpSampling2D):
        return [nn.Upsample(scale_factor=2, mode="nearest")]
    raise ConfigError(f"the PyTorch peer cannot build layer spec {spec!r}")


class Crop(nn.Module):
    """Keep the first ``height`` rows and ``width`` columns of NCHW images."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.height, self.width = height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x[:, :, :height, :width]``."""
        return x[:, :, :self.height, :self.width]


def conv2d(spec: Conv2D, in_shape: tuple[int, ...]) -> list[nn.Module]:
    """The modules computing fastgan's Conv2D exactly: ``nn.Conv2d`` with TensorFlow's "same"
    padding, ``P = max((ceil(H / s) - 1) s + k - H, 0)`` rows in all, t = P // 2 above. Even P
    is torch's symmetric ``padding``; odd P puts the extra row below and right, as fastgan
    does, with an ``nn.ZeroPad2d`` first (the same along the width)."""
    height, width, channels = in_shape

    def padding(side: int) -> int:
        return max((-(-side // spec.stride) - 1) * spec.stride + spec.kernel - side, 0)

    rows, columns = padding(height), padding(width)
    if rows % 2 == 0 and columns % 2 == 0:
        return [nn.Conv2d(channels, spec.filters, spec.kernel, spec.stride,
                          padding=(rows // 2, columns // 2))]
    pad = nn.ZeroPad2d((columns // 2, columns - columns // 2, rows // 2, rows - rows // 2))
    return [pad, nn.Conv2d(channels, spec.filters, spec.kernel, spec.stride)]


def conv_transpose(spec: ConvTranspose2D, in_shape: tuple[int, ...]) -> list[nn.Module]:
    """The modules computing fastgan's ConvTranspose2D exactly: ``nn.ConvTranspose2d`` with
    ``padding`` = the adjoint "same" convolution's top/left padding t and ``output_padding``
    where its size falls short of (sH, sW), then a :class:`Crop` where it overshoots.

    Its output is ``(H - 1) s - 2 t + k + output_padding`` rows, of which row ``h s + j - t``
    gathers input row h through kernel row j, as fastgan's; the "same" convolution pads
    ``P = max(k - s, 0)`` in all, t = P // 2 above: for k < s (P = 0) that is s - k rows short
    (``output_padding``, below s as torch requires), for odd P one row long (the row the
    bottom padding of P - t = t + 1 would hide: cropped).
    """
    height, width, channels = in_shape
    pad = max(spec.kernel - spec.stride, 0) // 2
    natural = (height - 1) * spec.stride - 2 * pad + spec.kernel
    extra = spec.stride * height - natural               # the same along the width
    layer = nn.ConvTranspose2d(channels, spec.filters, spec.kernel, spec.stride, padding=pad,
                               output_padding=max(extra, 0))
    return [layer] if extra >= 0 else [layer, Crop(spec.stride * height, spec.stride * width)]


def build_mlp(layers: Sequence[LayerSpec], in_features: int) -> nn.Sequential:
    """An ``nn.Sequential`` equal in architecture and initialisation to fastgan's network.

    Dense -> ``nn.Linear`` + activation; Dropout -> ``nn.Dropout``; BatchNorm ->
    ``nn.BatchNorm1d`` (``BatchNorm2d`` after a spatial layer) with PyTorch momentum
    ``1 - momentum`` (Keras' convention in the spec); Activation -> its module.

    Images are PyTorch's own NCHW: Reshape((H, W, C)) -> ``nn.Unflatten(1, (C, H, W))``,
    Flatten -> ``nn.Flatten``, Conv2D -> ``nn.Conv2d`` and ConvTranspose2D ->
    ``nn.ConvTranspose2d``, each computing exactly fastgan's map (see :func:`conv2d`,
    :func:`conv_transpose`), UpSampling2D -> ``nn.Upsample(scale_factor=2)``. Flat rows are
    thus read in (C, H, W) order where fastgan reads (H, W, C): identical for one channel,
    otherwise a fixed permutation of the features that i.i.d. initial weights do not see.
    A network ending on images flattens them, as fastgan's rows are flat.
    """
    modules: list[nn.Module] = []
    shapes = output_shapes(layers, in_features)
    for spec, in_shape in zip(layers, [(in_features,), *shapes[:-1]], strict=True):
        modules += _module(spec, in_shape)
    if len(shapes[-1]) == 3:
        modules.append(nn.Flatten())
    return nn.Sequential(*modules)


def build_optimizer(config: OptimizerConfig, params: Any) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimizer for ``config`` at its epoch-0 learning rate."""
    lr = config.lr * config.schedule.factor(0)
    if isinstance(config, Adam):
        return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), eps=config.eps)
    if isinstance(config, SGD):
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum)
    raise ConfigError(f"the PyTorch peer has no optimizer for {config!r}")


# ---------------------------------------------------------------- the GAN
class Targets(NamedTuple):
    """BCE targets, each of shape (B, 1): real rows (1 - label smoothing), fake rows (0),
    and the G step's (1 for the non-saturating loss, 0 for minimax, whose loss is negated)."""

    real: torch.Tensor
    fake: torch.Tensor
    generator: torch.Tensor


class TorchGAN:
    """A PyTorch generator/discriminator pair built from ``preset``, trained like fastgan.

    ``step(real)`` runs one training step without reading anything back to the host;
    ``stats()`` reads the last step's losses. With ``compile=True`` the D update and the G
    update are each wrapped in ``torch.compile`` (default mode on CPU, ``"reduce-overhead"`` on
    CUDA; the ``requires_grad`` switch on D stays outside, in Python): the first calls compile
    (seconds to a minute on a small CPU), so warm up before timing, and a new batch size
    recompiles. ``channels_last=True`` stores convolution weights NHWC, the layout oneDNN's
    CPU convolutions are fastest in (activations follow them).
    """

    def __init__(self, preset: GANConfig, *, device: str = "cpu", dtype: Any = "float32",
                 seed: int = 0, compile: bool = False, channels_last: bool = False) -> None:
        check_trainable(preset, "PyTorch")
        self.preset = preset
        self.device = _device(device)
        self.dtype = _dtype(dtype)
        torch.manual_seed(seed)
        self.generator = build_mlp(preset.generator, preset.latent_dim).to(self.device, self.dtype)
        self.discriminator = build_mlp(preset.discriminator, preset.data_dim).to(
            self.device, self.dtype)
        if channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        self.generator.train()
        self.discriminator.train()
        self.g_optimizer = build_optimizer(preset.g_optimizer, self.generator.parameters())
        self.d_optimizer = build_optimizer(preset.d_optimizer, self.discriminator.parameters())
        self._d_params = list(self.discriminator.parameters())
        self._g_params = list(self.generator.parameters())
        self._average = ([torch.zeros_like(p) for p in self._g_params]
                         if preset.ema_decay is not None else None)
        self._averaged_updates = 0
        self._targets: dict[int, Targets] = {}
        self._last: tuple[torch.Tensor, ...] | None = None
        self._run_d_update: Callable[..., tuple[torch.Tensor, ...]] = self._d_update
        self._run_g_update: Callable[[Targets], torch.Tensor] = self._g_update
        if compile:
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            self._run_d_update = torch.compile(self._d_update, mode=mode)
            self._run_g_update = torch.compile(self._g_update, mode=mode)

    # ------------------------------------------------------------------ inputs
    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters of each network."""
        def count(module: nn.Module) -> int:
            return sum(p.numel() for p in module.parameters() if p.requires_grad)
        return {"generator": count(self.generator), "discriminator": count(self.discriminator)}

    def make_batch(self, data: Any = None) -> torch.Tensor:
        """A real batch of k*B rows on this peer's device and dtype.

        ``data`` (array-like, shape (k*B, data_dim) or (k, B, data_dim)) is copied over;
        without it the rows are uniform on [-1, 1], the range of tanh-scaled images.
        """
        p = self.preset
        if data is None:
            shape = (p.k * p.batch_size, p.data_dim)
            return torch.rand(shape, device=self.device, dtype=self.dtype) * 2 - 1
        batch = torch.as_tensor(np.asarray(data)).to(self.device, self.dtype)
        return batch.reshape(-1, batch.shape[-1]) if batch.ndim == 3 else batch

    def _noise(self, batch: int) -> torch.Tensor:
        shape = (batch, self.preset.latent_dim)
        if self.preset.noise == "uniform":
            return torch.rand(shape, device=self.device, dtype=self.dtype) * 2 - 1
        return torch.randn(shape, device=self.device, dtype=self.dtype)

    def targets(self, batch: int) -> Targets:
        """The BCE targets for ``batch`` rows per D step, made once per batch size."""
        targets = self._targets.get(batch)
        if targets is None:
            p = self.preset
            values = (1.0 - p.label_smoothing, 0.0, 1.0 if p.g_loss == "non_saturating" else 0.0)
            targets = self._targets[batch] = Targets(*(
                torch.full((batch, 1), v, device=self.device, dtype=self.dtype) for v in values))
        return targets

    # ------------------------------------------------------------------ training
    def step(self, real: torch.Tensor) -> None:
        """One training step (k D steps, then one G step); no host synchronisation.

        ``real`` holds k*B rows of ``data_dim`` features (see :meth:`make_batch`); each D
        step takes its own B consecutive rows.
        """
        k, data_dim = self.preset.k, self.preset.data_dim
        if real.ndim != 2 or real.shape[1] != data_dim or not real.shape[0] or real.shape[0] % k:
            raise ConfigError(f"real batch must have k*B rows of {data_dim} features (k={k}); "
                              f"got shape {tuple(real.shape)}")
        batch = real.shape[0] // k
        targets = self.targets(batch)
        for i in range(k):
            d_loss, real_logits, fake_logits = self.discriminator_step(
                real[i * batch:(i + 1) * batch], targets)
        self._last = (d_loss, self.generator_step(targets), real_logits, fake_logits)
        if self._average is not None:   # average = decay average + (1 - decay) weights
            torch._foreach_lerp_(self._average, self._g_params, 1.0 - self.preset.ema_decay)
            self._averaged_updates += 1

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """G's images of ``noise`` as fastgan's ``GAN.sample`` makes them: in evaluation mode
        (batch norm's running statistics), with the average of G's weights when the preset
        has ``ema_decay``, read as fastgan reads it (``average / (1 - decay^t)`` after t
        updates; with none yet, the weights themselves)."""
        with torch.no_grad():
            kept = [p.clone() for p in self._g_params]
            if self._average is not None and self._averaged_updates:
                correction = 1.0 - self.preset.ema_decay ** self._averaged_updates
                torch._foreach_copy_(self._g_params, self._average)
                torch._foreach_div_(self._g_params, correction)
            self.generator.eval()
            try:
                return self.generator(noise)
            finally:
                self.generator.train()
                torch._foreach_copy_(self._g_params, kept)

    def discriminator_step(self, real: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, ...]:
        """One D update on B real rows and B fresh fakes (``targets`` from :meth:`targets`);
        returns (loss, real logits, fake logits), detached."""
        return self._run_d_update(real, targets)

    def generator_step(self, targets: Targets) -> torch.Tensor:
        """One G update through D on B fresh fakes (B = the rows of ``targets``); D's
        parameters do not require grad meanwhile, so they get no gradient and stay untouched.
        Returns the detached G loss."""
        for p in self._d_params:
            p.requires_grad_(False)
        try:
            return self._run_g_update(targets)
        finally:
            for p in self._d_params:
                p.requires_grad_(True)

    def _d_update(self, real: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, ...]:
        batch = real.shape[0]
        with torch.no_grad():
            fake = self.generator(self._noise(batch))
        logits = self.discriminator(torch.cat([real, fake]))
        real_logits, fake_logits = logits[:batch], logits[batch:]
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, targets.real)
                  + F.binary_cross_entropy_with_logits(fake_logits, targets.fake))
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        return d_loss.detach(), real_logits.detach(), fake_logits.detach()

    def _g_update(self, targets: Targets) -> torch.Tensor:
        logits = self.discriminator(self.generator(self._noise(targets.generator.shape[0])))
        g_loss = F.binary_cross_entropy_with_logits(logits, targets.generator)
        if self.preset.g_loss == "minimax":
            g_loss = -g_loss
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()
        return g_loss.detach()

    def stats(self) -> dict[str, float]:
        """Losses and mean D outputs of the last step (one host synchronisation)."""
        if self._last is None:
            raise FastganError("no training step has run yet: call step() first")
        d_loss, g_loss, real_logits, fake_logits = self._last
        values = torch.stack([d_loss, g_loss, torch.sigmoid(real_logits).mean(),
                              torch.sigmoid(fake_logits).mean()]).tolist()
        return dict(zip(("d_loss", "g_loss", "d_real", "d_fake"), values, strict=True))
