"""fastgan's version, in one place: the package, checkpoints and ``fastgan --version`` read it."""

__version__ = "0.1.0"
