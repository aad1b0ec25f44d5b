"""The CUDA kernel source ships with the package: the loader reads every .cu file in it, and
pyproject.toml's package data puts each of them in the wheel."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path

from fastgan.backends.cuda_kernels import SOURCE_FILES

ROOT = Path(__file__).resolve().parents[1]
KERNEL_FOLDER = ROOT / "fastgan" / "backends" / "cuda"


def _package_data() -> set[Path]:
    """The files setuptools ships as package data, by the globs of pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    table = config["tool"]["setuptools"]["package-data"]
    return {path for package, patterns in table.items() for pattern in patterns
            for path in ROOT.joinpath(*package.split(".")).glob(pattern)}


def test_every_kernel_file_the_loader_reads_is_package_data():
    shipped = _package_data()
    assert [name for name in SOURCE_FILES if KERNEL_FOLDER / name not in shipped] == []


def test_the_loader_reads_every_kernel_file_of_the_package():
    resources = files("fastgan.backends").joinpath("cuda").iterdir()
    assert sorted(r.name for r in resources if r.name.endswith(".cu")) == sorted(SOURCE_FILES)
