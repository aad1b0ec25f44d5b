"""What the peers (PyTorch, JAX) train: fastgan's rule with the BCE losses (a non-saturating
or minimax G loss), no spectral normalisation, no R1 penalty and no class labels. A
configuration asking for more is refused, so that a peer never races while training something
else."""

from __future__ import annotations

from ..errors import ConfigError
from ..gan.config import GANConfig


def check_trainable(config: GANConfig, peer: str) -> None:
    """Raise a ConfigError naming ``peer`` where ``config`` asks for what it does not train."""
    if config.d_loss != "bce" or config.g_loss not in ("non_saturating", "minimax"):
        raise ConfigError(f"the {peer} peer trains the BCE losses, not "
                          f"{config.d_loss}/{config.g_loss}")
    if config.spectral_norm:
        raise ConfigError(f"the {peer} peer has no spectral normalisation")
    if config.r1_gamma:
        raise ConfigError(f"the {peer} peer has no R1 penalty")
    if config.conditional:
        raise ConfigError(f"the {peer} peer trains unconditional GANs")
