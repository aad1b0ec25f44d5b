"""The `fastgan` command, run as users run it (`python -m fastgan ...` in a subprocess): the
run folder, exact resume, Ctrl-C, divergence, one-line errors, `sample` and `info`."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import drills

import fastgan
from fastgan import environment
from fastgan.training import checkpoint

ROOT = Path(__file__).resolve().parents[1]
# Small matrices: one BLAS thread is quickest, and keeps a busy machine from slowing tests.
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
TINY_RING = ("train", "--preset", "tiny", "--data", "ring", "--no-progress")
TINY_DIGITS = ("train", "--preset", "tiny", "--data", "digits", "--no-progress")


def fastgan_command(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastgan", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files if name != "metadata.json"}


def steps_of(path: Path) -> int:
    return checkpoint.read_metadata(path)["progress"]["steps"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """tiny on digits for 3 epochs of 11 steps."""
    cwd = tmp_path_factory.mktemp("digits")
    result = fastgan_command(*TINY_DIGITS, "--epochs", "3", "--log-every", "5", "--threads", "1",
                             "--out", "run", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd / "run"


def test_train_writes_a_complete_run_folder(digits_run):
    config = json.loads((digits_run / "config.json").read_text())
    assert config["config"]["preset"] == "tiny" and config["config"]["epochs"] == 3
    assert config["config"]["threads"] == 1
    assert config["backend"] in fastgan.backends.names() and config["dtype"] == "float32"
    assert config["steps_per_epoch"] == 11 and config["total_steps"] == 33
    assert config["data"]["image_shape"] == [8, 8] and len(config["data"]["sha256"]) == 64
    assert config["model"]["generator"][-1] == {"type": "Dense", "units": 64,
                                                "activation": "tanh", "alpha": 0.0,
                                                "init": "he_normal"}
    assert config["versions"]["numpy"] == np.__version__
    records = metrics(digits_run)
    assert [r["step"] for r in records if r["event"] == "log"] == [5, 10, 15, 20, 25, 30, 33]
    assert [(r["epoch"], r["step"]) for r in records if r["event"] == "epoch"] == [
        (1, 11), (2, 22), (3, 33)]
    assert records[-1] == {"event": "end", "outcome": "completed", "step": 33, "epoch": 3}
    grids = sorted(p.name for p in (digits_run / "samples").iterdir())
    assert grids == ["epoch_0001.png", "epoch_0002.png", "epoch_0003.png", "final.png"]
    with Image.open(digits_run / "samples" / "epoch_0003.png") as grid:
        assert grid.size == (8 * 56 + 7 * 2, 8 * 56 + 7 * 2)   # 8x8 tiles of 8x8 pixels x7
    with Image.open(digits_run / "training.gif") as gif:
        assert gif.n_frames == 3          # the final picture is epoch 3's: Pillow merges them
    assert (digits_run / "loss_curves.png").stat().st_size > 0
    assert steps_of(digits_run / "checkpoint.npz") == 33
    assert np.load(digits_run / "fixed_noise.npy").shape == (64, 8)


def assert_resume_is_bit_for_bit(common: tuple[str, ...], first: int, steps: int,
                                 cwd: Path) -> None:
    """``fastgan train COMMON`` stopped at step ``first`` in a/ and resumed to ``steps`` ends
    with the checkpoint of the same run trained straight to ``steps`` in b/."""
    assert fastgan_command(*common, "--steps", first, "--out", "a", cwd=cwd).returncode == 0
    resumed = fastgan_command("train", "--resume", "a", "--steps", steps, "--no-progress",
                              cwd=cwd)
    assert resumed.returncode == 0, resumed.stderr
    assert fastgan_command(*common, "--steps", steps, "--out", "b", cwd=cwd).returncode == 0
    first_run, second_run = arrays(cwd / "a/checkpoint.npz"), arrays(cwd / "b/checkpoint.npz")
    assert first_run.keys() == second_run.keys()
    for name in first_run:
        np.testing.assert_array_equal(first_run[name], second_run[name], err_msg=name)


def test_resume_through_the_cli_is_bit_for_bit(tmp_path):
    common = (*TINY_RING, "--log-every", "10", "--checkpoint-every", "0", "--latent-dim", "4",
              "--g-hidden", "32", "16", "--lr", "2e-3")
    assert_resume_is_bit_for_bit(common, 45, 90, tmp_path)
    resumed_losses, straight_losses = ({r["step"]: (r["d_loss"], r["g_loss"])
                                        for r in metrics(tmp_path / run) if r["event"] == "log"}
                                       for run in ("a", "b"))
    assert resumed_losses.pop(45)                # the first session's last step was logged too
    assert resumed_losses == straight_losses
    config = json.loads((tmp_path / "a/config.json").read_text())
    assert config["config"]["steps"] == 90 and config["config"]["g_hidden"] == [32, 16]
    assert [layer["units"] for layer in config["model"]["generator"]] == [32, 16, 2]
    assert config["model"]["latent_dim"] == 4 and config["model"]["g_optimizer"]["lr"] == 2e-3


def test_loss_spectral_norm_and_r1_are_set_and_survive_resume(tmp_path):
    result = fastgan_command(*TINY_RING, "--steps", "3", "--loss", "hinge", "--spectral-norm",
                             "--r1-gamma", "10", "--r1-every", "2", "--out", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model = json.loads((tmp_path / "run/config.json").read_text())["model"]
    assert model["d_loss"] == model["g_loss"] == "hinge" and model["spectral_norm"]
    assert (model["r1_gamma"], model["r1_every"]) == (10.0, 2)
    assert fastgan.load(tmp_path / "run").config.d_loss == "hinge"
    result = fastgan_command("train", "--resume", "run", "--steps", "5", "--no-progress",
                             cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert steps_of(tmp_path / "run/checkpoint.npz") == 5
    assert all(np.isfinite(r["d_loss"]) for r in metrics(tmp_path / "run") if "d_loss" in r)


def test_architecture_settings_shape_the_convolutional_gan_and_survive_resume(tmp_path):
    result = fastgan_command("train", "--preset", "fast-dcgan", "--data", "digits",
                             "--g-filters", "4", "2", "--d-filters", "2", "4", "--kernel", "3",
                             "--upsample", "nearest", "--norm", "none", "--alpha", "0.1",
                             "--steps", "3", "--no-progress", "--out", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "run/config.json").read_text())
    settings = {key: record["config"][key]
                for key in ("g_filters", "d_filters", "kernel", "upsample", "norm", "alpha")}
    assert settings == {"g_filters": [4, 2], "d_filters": [2, 4], "kernel": 3,
                        "upsample": "nearest", "norm": "none", "alpha": 0.1}
    assert [layer["type"] for layer in record["model"]["generator"]] == [
        "Dense", "Activation", "Reshape", "UpSampling2D", "Conv2D", "Activation",
        "UpSampling2D", "Conv2D"]
    result = fastgan_command("train", "--resume", "run", "--steps", "5", "--no-progress",
                             cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    resumed = json.loads((tmp_path / "run/config.json").read_text())
    assert resumed["model"] == record["model"] and resumed["config"]["steps"] == 5
    assert steps_of(tmp_path / "run/checkpoint.npz") == 5
    changed = fastgan_command("train", "--resume", "run", "--kernel", "5", cwd=tmp_path)
    assert changed.returncode == 1 and "kernel cannot change" in changed.stderr


def test_beta1_sets_adams_beta1_of_both_networks_and_is_checked(tmp_path):
    result = fastgan_command(*TINY_RING, "--steps", "3", "--beta1", "0.7", "--out", "run",
                             cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model = json.loads((tmp_path / "run/config.json").read_text())["model"]
    assert model["g_optimizer"]["beta1"] == model["d_optimizer"]["beta1"] == 0.7
    for args, expected in ((("--beta1", "1.5"), "Adam beta1 must be in [0, 1)"),
                           (("--beta1", "0.5", "--preset", "numpy-mlp"), "trains with SGD")):
        result = fastgan_command(*TINY_RING, "--steps", "3", *args, "--out", "new", cwd=tmp_path)
        assert result.returncode == 1 and expected in result.stderr


@pytest.mark.faults
@pytest.mark.parametrize(("signum", "status", "name"), [
    (signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_saves_a_checkpoint_exits_128_plus_it_and_the_run_resumes(
        tmp_path, signum, status, name, child_dispositions):
    process = subprocess.Popen(
        [sys.executable, "-m", "fastgan", *TINY_RING, "--steps", "1000000", "--log-every", "10",
         "--checkpoint-every", "20", "--out", "run"],
        cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=child_dispositions)
    saved = tmp_path / "run" / "checkpoint.npz"
    deadline = time.monotonic() + 120
    while not saved.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    sent = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    stopped_within = time.monotonic() - sent
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr and "fastgan train --resume run" in stderr
    assert f"fastgan: stopped by {name}; checkpoint at step" in stderr
    stopped_at = steps_of(saved)
    assert 20 <= stopped_at < 1_000_000
    assert metrics(tmp_path / "run")[-1] == {"event": "end", "outcome": "stopped",
                                             "step": stopped_at,
                                             "epoch": stopped_at // 32}   # 4096 // 128
    resumed = fastgan_command("train", "--resume", "run", "--steps", str(stopped_at + 7),
                              "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert steps_of(saved) == stopped_at + 7
    drills.record("`fastgan train` stopped by SIGINT or SIGTERM (SIGINT inherited at its "
                  "default or ignored)", faults=1, survived=1, lost=0,
                  detection_s=stopped_within, note="the checkpoint holds the last step; exit "
                  "130/143; `--resume` continues")


def test_divergence_names_step_and_network_and_keeps_the_last_good_checkpoint(tmp_path):
    result = fastgan_command("train", "--preset", "numpy-mlp", "--lr", "1e12", "--steps", "50",
                             "--log-every", "5", "--checkpoint-every", "1", "--no-progress",
                             "--out", "run", cwd=tmp_path)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert "training diverged (found at step" in message and "generator" in message
    assert "last good checkpoint (step" in message
    saved = tmp_path / "run" / "checkpoint.npz"
    diverged_at = metrics(tmp_path / "run")[-1]
    assert diverged_at["outcome"] == "diverged"
    assert steps_of(saved) == diverged_at["step"] - 1
    gan = fastgan.load(saved)
    assert np.isfinite(gan.generator.params.data).all()
    assert np.isfinite(gan.discriminator.params.data).all()


@pytest.mark.parametrize(("args", "expected"), [
    (("train", "--preset", "dcgan-9000", "--out", "new"), "unknown preset 'dcgan-9000'"),
    (("train", "--backend", "tpu", "--out", "new"), "unknown backend 'tpu'"),
    (("train", "--data", "imagenet", "--out", "new"), "unknown dataset 'imagenet'"),
    (("train", "--data", "missing.npz", "--out", "new"), "missing.npz"),
    (("train", "--resume", "no-such-run"), "no-such-run is not a run folder"),
    (("train", "--out", "occupied"), "occupied already exists"),
    (("train", "--tensorboard", "--out", "new"), "tensorboardX"),
    (("train", "--loss", "wasserstein", "--out", "new"), "unknown loss 'wasserstein'"),
    (("train", "--loss", "hinge", "--label-smoothing", "0.1", "--out", "new"),
     "no target to move in the hinge loss"),
    (("train", "--r1-gamma", "-1", "--out", "new"), "r1_gamma must be a number >= 0"),
    (("train", "--r1-gamma", "10", "--r1-every", "0", "--out", "new"), "r1_every"),
    (("train", "--upsample", "nearest", "--out", "new"),
     "preset 'tiny' does not take upsample (its own settings: latent_dim, g_hidden, "),
    (("train", "--preset", "keras-dcgan", "--kernel", "5", "--out", "new"),
     "preset 'keras-dcgan' does not take kernel"),
    (("train", "--preset", "fast-dcgan", "--d-filters", "8", "--out", "new"),
     "d_filters must be at least 2 positive channel count(s), got (8,)"),
    (("sample", "no-such.npz"), "no checkpoint at no-such.npz"),
    (("sample", "occupied/notes.txt"), "cannot be read as a checkpoint"),
    (("sample", "occupied/notes.txt", "-o", "out.jpg"), "must end in .png or .npy"),
])
def test_errors_are_one_clear_line(tmp_path, args, expected):
    if "tensorboardX" in expected and importlib.util.find_spec("tensorboardX"):
        pytest.skip("tensorboardX is installed here")
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.txt").write_text("not a checkpoint")
    result = fastgan_command(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("fastgan: error: ") and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "new").exists()             # nothing made before the error


def test_bad_command_lines_are_usage_errors(tmp_path):
    for args in (("train", "--epochs", "many"), ("train", "--epochs", "2", "--steps", "3"), ()):
        result = fastgan_command(*args, cwd=tmp_path)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1 and "--help" in result.stderr


def test_resume_refuses_changed_settings_and_another_architecture(tmp_path, digits_run):
    changed = fastgan_command("train", "--resume", digits_run, "--preset", "numpy-mlp",
                              cwd=tmp_path)
    assert changed.returncode == 1 and "preset cannot change" in changed.stderr
    run = tmp_path / "run"
    assert fastgan_command(*TINY_DIGITS, "--steps", "2", "--out", run, cwd=tmp_path).returncode == 0
    other = fastgan.GAN.from_preset("tiny", data_dim=64, g_hidden=(32,))
    other.save(run / "checkpoint.npz")
    result = fastgan_command("train", "--resume", run, "--steps", "4", cwd=tmp_path)
    assert result.returncode == 1 and "another architecture" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_resume_of_a_finished_run_says_so(tmp_path, digits_run):
    result = fastgan_command("train", "--resume", digits_run, cwd=tmp_path)
    assert result.returncode == 0 and "is complete at step 33" in result.stderr


def test_sample_writes_png_grids_and_npy_arrays(tmp_path, digits_run):
    png = fastgan_command("sample", digits_run, "-n", "10", "-o", "grid.png", cwd=tmp_path)
    assert png.returncode == 0, png.stderr
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size == (4 * 56 + 3 * 2, 3 * 56 + 2 * 2)   # 10 images: 4 columns, 3 rows
    for name in ("a.npy", "b.npy"):
        result = fastgan_command("sample", digits_run / "checkpoint.npz", "-n", "10",
                                 "--seed", "3", "-o", name, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    samples = np.load(tmp_path / "a.npy")
    assert samples.shape == (10, 64) and samples.dtype == np.float32
    assert np.abs(samples).max() <= 1
    np.testing.assert_array_equal(samples, np.load(tmp_path / "b.npy"))   # same seed


def test_sample_of_non_image_data_needs_npy(tmp_path):
    assert fastgan_command(*TINY_RING, "--steps", "2", "--out", "run", cwd=tmp_path).returncode == 0
    result = fastgan_command("sample", "run", "-o", "ring.png", cwd=tmp_path)
    assert result.returncode == 1 and "write them to an .npy file" in result.stderr
    assert fastgan_command("sample", "run", "-o", "ring.npy", cwd=tmp_path).returncode == 0
    assert np.load(tmp_path / "ring.npy").shape == (64, 2)


def test_info_reports_versions_backends_threads_and_gpu(tmp_path):
    result = fastgan_command("info", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"fastgan {fastgan.__version__}" in out and f"numpy {np.__version__}" in out
    assert "numpy  usable" in out and "auto   -> " in out
    assert "threads:" in out and "GPU:" in out
    gemm = environment.gemm_library()
    assert f"GEMM: {gemm['library']} {gemm['version']}, kernel {gemm['kernel'] or '-'}" in out
    for name, reason in fastgan.available_backends().items():
        assert (f"{name:6} usable" if reason is None else f"{name:6} not usable") in out
