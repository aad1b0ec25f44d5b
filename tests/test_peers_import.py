"""Peers are opt-in: fastgan never imports torch itself, and a missing torch is a clear error."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from fastgan.errors import BackendUnavailable


def test_fastgan_does_not_import_torch():
    code = ("import sys, fastgan, fastgan.gan.presets, fastgan.benchmarking.floor, "
            "fastgan.benchmarking.bench; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_torch_peer_without_torch_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    monkeypatch.delitem(sys.modules, "fastgan.benchmarking.torch_peer", raising=False)
    with pytest.raises(BackendUnavailable, match=r"fastgan\[compare\]"):
        importlib.import_module("fastgan.benchmarking.torch_peer")
