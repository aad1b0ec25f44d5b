"""`fastgan sweep` and fastgan.sweep: the space, budgets, rungs, bad input, and whole sweeps —
in this process (no Dask needed) and on a Dask LocalCluster of two worker processes (skipped
with the reason where Dask is not installed).

The ring has no evaluation classifier, so sweeps on it are not scored: they test the machinery
(results, re-runs, divergence, Ctrl-C). Scoring and successive halving run on digits, whose
classifier the workers build from the quick test recipe (a preload script) instead of the
real one, which takes minutes."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support import drills

import fastgan
from fastgan import sweep
from fastgan.cli import main as cli
from fastgan.errors import ConfigError
from fastgan.evaluation import classifier
from fastgan.evaluation.metrics import Evaluator
from fastgan.runs.folder import RESUMABLE, TrainConfig
from fastgan.sweep import Amount, Range, Space, halving, pools, trial
from fastgan.sweep.space import describe, parse_grid
from fastgan.training.loop import Callback
from fastgan.training.monitors import read_records

ROOT = Path(__file__).resolve().parents[1]
RING = ("sweep", "--preset", "tiny", "--data", "ring", "--backend", "numpy", "--no-progress")
BASE = TrainConfig(preset="tiny", data="digits", backend="numpy", threads=1)
NO_DASK = "dask[distributed] is not installed: pip install 'fastgan[sweep]'"


def records(out: Path, event: str) -> list[dict]:
    return [r for r in read_records(out / "results.jsonl") if r.get("event") == event]


def arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files if name != "metadata.json"}


def one_line_error(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastgan: error: "), err
    return err[0]


# ---------------------------------------------------------------- amounts, spaces, rungs
def test_amounts_read_times_and_step_counts():
    assert Amount.parse("300s") == Amount(300.0, "s") == Amount.parse("5m")
    assert Amount.parse("1.5h") == Amount(5400.0, "s")
    assert Amount.parse("2000") == Amount.parse("2000steps") == Amount.parse(2000)
    assert Amount.parse("2000").steps == 2000 and str(Amount.parse("90s")) == "90s"
    for bad in ("soon", "0", "-5s", "1.5", "10 minutes"):
        with pytest.raises(ConfigError):
            Amount.parse(bad)


def test_the_hyper_parameters_are_trainconfigs_run_defining_fields():
    names = set(sweep.hyper_parameters())
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert names == fields - set(RESUMABLE) - {"seed"}
    assert {"lr", "g_lr", "d_lr", "ema", "batch_size", "label_smoothing"} <= names


def test_grid_values_take_the_type_trainconfig_declares():
    space = Space(grid={"lr": ["1e-4", "2e-4"], "ema": ["none", "0.999"],
                        "g_hidden": ["32 16"]})
    assert space.settings() == [
        {"lr": 1e-4, "ema": None, "g_hidden": (32, 16)},
        {"lr": 1e-4, "ema": 0.999, "g_hidden": (32, 16)},
        {"lr": 2e-4, "ema": None, "g_hidden": (32, 16)},
        {"lr": 2e-4, "ema": 0.999, "g_hidden": (32, 16)}]
    with pytest.raises(ConfigError, match=r"batch_size takes a whole number, not '64\.5'"):
        Space(grid={"batch_size": ["64.5"]})
    assert Space(grid={"spectral_norm": ["true", False], "loss": ["hinge"]}).settings() == [
        {"spectral_norm": True, "loss": "hinge"}, {"spectral_norm": False, "loss": "hinge"}]
    with pytest.raises(ConfigError, match=r"spectral_norm takes true or false, not 'yes'"):
        Space(grid={"spectral_norm": ["yes"]})
    with pytest.raises(ConfigError, match=r"not a hyper-parameter.*label_smoothing"):
        Space(grid={"steps": [10]})


def test_architecture_axes_read_alike_from_the_command_line_and_a_toml_file():
    name, values = parse_grid("g_filters=64 32,32 16")
    from_line = Space(grid={name: values, "upsample": ["transposed", "nearest"]})
    from_toml = Space(grid={"g_filters": [[64, 32], [32, 16]],
                            "upsample": ["transposed", "nearest"]})
    assert from_line.settings() == from_toml.settings() == [
        {"g_filters": (64, 32), "upsample": "transposed"},
        {"g_filters": (64, 32), "upsample": "nearest"},
        {"g_filters": (32, 16), "upsample": "transposed"},
        {"g_filters": (32, 16), "upsample": "nearest"}]
    assert describe(from_line.settings()[1], ["g_filters", "upsample"]) == \
        "g_filters=64x32 upsample=nearest"
    assert Space(grid={"kernel": ["3", 5], "alpha": ["0.1"], "norm": ["none"]}).settings() == [
        {"kernel": 3, "alpha": 0.1, "norm": "none"}, {"kernel": 5, "alpha": 0.1, "norm": "none"}]
    with pytest.raises(ConfigError, match=r"g_filters takes whole numbers separated by spaces "
                                          r"\(e\.g\. 256 512\): give its values as a grid"):
        Space(random={"g_filters": Range(8, 64)}, samples=2)
    with pytest.raises(ConfigError, match="upsample takes text: give its values as a grid"):
        Space(random={"upsample": Range(0, 1)}, samples=2)


def test_points_are_whole_settings_each_combined_with_the_grid():
    space = Space(points=[{"g_lr": "2e-4", "d_lr": 1e-4}, {"g_lr": 4e-4, "d_lr": 2e-4}],
                  grid={"ema": [None, 0.999]})
    assert space.settings() == [
        {"g_lr": 2e-4, "d_lr": 1e-4, "ema": None}, {"g_lr": 2e-4, "d_lr": 1e-4, "ema": 0.999},
        {"g_lr": 4e-4, "d_lr": 2e-4, "ema": None}, {"g_lr": 4e-4, "d_lr": 2e-4, "ema": 0.999}]
    with pytest.raises(ConfigError, match="set by the points and also by the grid"):
        Space(points=[{"lr": 1e-3}], grid={"lr": [2e-3]})


def test_random_draws_stay_in_range_repeat_with_the_seed_and_combine_with_the_grid():
    space = Space(grid={"ema": [None, 0.999]},
                  random={"lr": Range(1e-4, 1e-2, log=True), "batch_size": Range(16, 256)},
                  samples=20, seed=3)
    settings = space.settings()
    assert len(settings) == 40 and settings == space.settings()
    assert all(1e-4 <= s["lr"] <= 1e-2 and isinstance(s["batch_size"], int)
               and 16 <= s["batch_size"] <= 256 for s in settings)
    lrs = np.log10([s["lr"] for s in settings[:20]])
    assert lrs.min() < -3.3 and lrs.max() > -2.7             # spread over the decades
    assert [s["lr"] for s in settings[:20]] == [s["lr"] for s in settings[20:]]
    assert Range.parse("1e-4:1e-3:log") == Range(1e-4, 1e-3, log=True)
    for bad in ("1e-3:1e-4", "0:1:log", "a:b", "1:2:3"):
        with pytest.raises(ConfigError):
            Range.parse(bad)


def test_rungs_halve_down_to_one_setting_and_respect_a_minimum():
    budget = Amount(270, "steps")
    assert [r.steps for r in halving.rungs(budget, 3, 27)] == [10, 30, 90, 270]
    assert [r.steps for r in halving.rungs(budget, 3, 26)] == [30, 90, 270]
    assert [r.steps for r in halving.rungs(budget, 3, 27, Amount(25, "steps"))] == [30, 90, 270]
    assert [r.steps for r in halving.rungs(Amount(3, "steps"), 2, 64)] == [1, 2, 3]
    assert [r.value for r in halving.rungs(Amount(300, "s"), 3, 9)] == pytest.approx(
        [300 / 9, 100, 300])
    assert [halving.survivors_count(n, 3) for n in (27, 9, 3, 2)] == [9, 3, 1, 1]
    ladder = halving.rungs(budget, 3, 27)
    cost = halving.planned_cost(ladder, [27, 9, 3, 1])
    assert cost == 27 * 10 + 9 * 20 + 3 * 60 + 1 * 180                 # 810 of 27 * 270
    with pytest.raises(ConfigError, match="eta >= 2"):
        halving.rungs(budget, 1, 27)


def test_ranking_puts_failures_last_either_way_round():
    scores = {"a": 3.0, "b": math.nan, "c": 1.0, "d": 2.0}
    assert halving.ranked(scores, lower_is_better=True) == ["c", "d", "a", "b"]
    assert halving.ranked(scores, lower_is_better=False) == ["a", "d", "c", "b"]


def test_the_trial_clock_evaluates_at_multiples_and_stops_at_the_target():
    gan = fastgan.GAN.from_preset("tiny", data_dim=2, backend="numpy")
    clock = trial.TrialClock(Amount(10, "steps"), Amount(4, "steps"),
                             lambda gan: {"at": gan.steps})
    history = gan.fit(fastgan.data.ring(1024), steps=100, callbacks=[clock])
    assert history.outcome == "stopped" and gan.steps == clock.step == 10
    assert [(r["step"], r["at"]) for r in clock.records] == [(4, 4), (8, 8), (10, 10)]
    seconds = [r["seconds"] for r in clock.records]
    assert seconds == sorted(seconds) and seconds[0] >= 0
    resumed = trial.TrialClock(Amount(14, "steps"), Amount(4, "steps"),
                               lambda gan: {"at": gan.steps}, seconds=clock.seconds)
    gan.fit(fastgan.data.ring(1024), steps=100, callbacks=[resumed])
    assert [r["step"] for r in resumed.records] == [12, 14]
    assert resumed.records[0]["seconds"] >= clock.seconds


def test_the_trial_clock_stops_at_a_time_target_without_its_first_step_or_evaluations(
        monkeypatch):
    """Every step takes 1 s and every evaluation 10 s of a fake clock: the first step (kernel
    loading on a fresh worker) and the evaluations are not training seconds."""
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])

    class StepCost(Callback):
        def on_step_end(self, loop) -> None:
            now[0] += 1.0

    def evaluate(gan) -> dict:
        now[0] += 10.0
        return {"at": gan.steps}

    gan = fastgan.GAN.from_preset("tiny", data_dim=2, backend="numpy")
    clock = trial.TrialClock(Amount(3, "s"), Amount(2, "s"), evaluate, seconds=0.5)
    history = gan.fit(fastgan.data.ring(1024), steps=100, callbacks=[StepCost(), clock])
    assert history.outcome == "stopped" and gan.steps == 4 and clock.seconds == 3.5
    assert [(r["step"], r["seconds"]) for r in clock.records] == [(3, 2.5), (4, 3.5)]


# ---------------------------------------------------------------- bad input, one line, nothing made
@pytest.mark.parametrize(("extra", "expected"), [
    (("--grid", "steps=10,20"), "'steps' is not a hyper-parameter a sweep can vary; choose from "
                                "preset, data"),
    (("--grid", "batch_size=64,lots"), "batch_size takes a whole number, not 'lots'"),
    (("--grid", "label_smoothing=0.1,1.5"), "setting label_smoothing=1.5: label_smoothing must "
                                            "be in [0, 1)"),
    (("--grid", "ema=0.999,2"), "setting ema=2: EMA decay must be in (0, 1)"),
    (("--grid", "lr=-1"), "learning rate"),
    (("--grid", "loss=hinge,wasserstein"), "setting loss=wasserstein: unknown loss 'wasserstein'"),
    (("--grid", "beta1=0.5,1.5"), "setting beta1=1.5: Adam beta1 must be in [0, 1)"),
    (("--grid", "batch_size=100000"), "fewer than one step takes"),
    (("--grid", "preset=dcgan-9000"), "unknown preset 'dcgan-9000'"),
    (("--random", "lr=1e-3:1e-4"), "low < high"),
    (("--random", "lr=1e-4:1e-3"), "random ranges need a number of samples"),
    (("--metric", "frechet_distance"), "cannot evaluate on ring"),
    (("--halving", "3"), "successive halving ranks trials by a metric"),
    (("--workers", "0"), "workers must be a positive integer"),
])
def test_bad_sweeps_fail_in_one_line_before_anything_is_made(tmp_path, capsys, extra, expected):
    out = tmp_path / "sweep"
    message = one_line_error(capsys, [*RING, "--budget", "10", "--out", str(out), *extra])
    assert expected in message
    assert not out.exists()


def test_a_missing_budget_and_an_unknown_metric_are_named(tmp_path, capsys):
    assert "give --budget" in one_line_error(capsys, [*RING, "--out", str(tmp_path / "s")])
    message = one_line_error(capsys, ["sweep", "--data", "digits", "--budget", "5", "--metric",
                                      "beauty", "--out", str(tmp_path / "s")])
    assert "unknown metric 'beauty'; choose from frechet_distance" in message


def test_a_folder_of_another_sweep_or_of_other_files_is_refused(tmp_path, capsys):
    out = tmp_path / "sweep"
    command = [*RING, "--grid", "lr=1e-3", "--budget", "5", "--workers", "1", "--out", str(out)]
    assert cli.main(command) == 0
    results = (out / "results.jsonl").read_text()
    message = one_line_error(capsys, [*RING, "--grid", "lr=1e-3", "--budget", "6",
                                      "--workers", "1", "--out", str(out)])
    assert f"{out} holds a different sweep (its budget, rungs differ)" in message
    assert (out / "results.jsonl").read_text() == results
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    message = one_line_error(capsys, [*command[:-2], "--out", str(tmp_path / "notes")])
    assert "exists and is not a sweep folder" in message


# ---------------------------------------------------------------- in this process, without Dask
def test_without_dask_trials_run_one_at_a_time_in_this_process(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pools, "dask_installed", lambda: False)
    out = tmp_path / "sweep"
    assert cli.main([*RING, "--grid", "lr=1e-3,2e-3", "--budget", "20", "--out", str(out)]) == 0
    assert "trials run one at a time in this process" in capsys.readouterr().err
    assert [r["status"] for r in records(out, "end")] == ["completed", "completed"]
    assert records(out, "session")[-1]["where"] == pools.SerialPool.description
    message = one_line_error(capsys, [*RING, "--budget", "20", "--workers", "2",
                                      "--out", str(tmp_path / "other")])
    assert "needs Dask: pip install 'fastgan[sweep]'" in message


def test_a_trial_that_raises_is_recorded_and_the_others_finish(tmp_path, monkeypatch):
    opened = trial._open

    def flaky(task: trial.TrialTask):
        if task.name == "trial-001":
            raise RuntimeError("disk on fire")
        return opened(task)

    monkeypatch.setattr(trial, "_open", flaky)
    base = dataclasses.replace(BASE, data="ring")
    results = sweep.run({"lr": [1e-3, 2e-3, 3e-3]}, tmp_path / "s", base=base, budget=15,
                        workers=1)
    assert [(r["trial"], r["status"], r["error"]) for r in results] == [
        ("trial-000", "completed", None), ("trial-001", "failed", "RuntimeError: disk on fire"),
        ("trial-002", "completed", None)]
    assert "trial-001: RuntimeError: disk on fire" in (tmp_path / "s/summary.md").read_text()
    assert isinstance(results, list) and results[0]["step"] == 15
    if not _has("pandas"):
        with pytest.raises(ConfigError, match="needs pandas"):
            results.frame()


def test_a_time_budget_ends_the_run_folder_where_its_clock_stopped(tmp_path):
    base = dataclasses.replace(BASE, data="ring")
    (row,) = sweep.run({}, tmp_path / "s", base=base, budget="0.3s", workers=1)
    assert row["status"] == "completed" and row["seconds"] >= 0.3 and row["step"] > 0
    config = json.loads((tmp_path / "s/trial-000/config.json").read_text())
    assert config["total_steps"] == config["config"]["steps"] == row["step"]
    assert fastgan.load(tmp_path / "s/trial-000").steps == row["step"]


def test_a_toml_file_describes_the_same_sweep_as_the_options(tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text('preset = "tiny"\ndata = "ring"\nbackend = "numpy"\nbudget = 5\n'
                     'workers = 1\nseeds = 2\n[grid]\nema = ["none"]\n'
                     '[[points]]\nlr = 1e-3\n[[points]]\nlr = "2e-3"\n')
    assert cli.main(["sweep", "--config", str(study), "--no-progress",
                     "--out", str(tmp_path / "a")]) == 0
    assert cli.main([*RING, "--grid", "lr=1e-3,2e-3", "--grid", "ema=none", "--budget", "5",
                     "--seeds", "2", "--workers", "1", "--out", str(tmp_path / "a")]) == 0
    assert len(records(tmp_path / "a", "end")) == 4                   # the re-run added none
    study.write_text("budget = 5\nspeed = 11\n")
    message = one_line_error(capsys, ["sweep", "--config", str(study), "--out",
                                      str(tmp_path / "b")])
    assert "unknown keys speed" in message


@pytest.mark.faults
@pytest.mark.parametrize("child_dispositions", [signal.SIG_IGN], ids=["sigint-ignored"],
                         indirect=True)
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_keeps_finished_trials_and_the_same_command_finishes_the_rest(
        tmp_path, signum, status, child_dispositions):
    """Whatever the sweep inherited: started as a background job (SIGINT ignored), it still
    stops on SIGINT as on SIGTERM."""
    command = [sys.executable, "-m", "fastgan", *RING, "--grid", "lr=1e-3,2e-3,3e-3,4e-3",
               "--budget", "1s", "--workers", "1", "--out", "s"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
                               preexec_fn=child_dispositions)
    results = tmp_path / "s" / "results.jsonl"
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline and not (
            results.exists() and '"end"' in results.read_text()):
        time.sleep(0.05)
    sent = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    stopped_within = time.monotonic() - sent
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr and "re-run the same command to continue" in stderr
    finished = {r["trial"] for r in records(tmp_path / "s", "end")}
    assert 1 <= len(finished) < 4
    assert "interrupted" in (tmp_path / "s/summary.md").read_text()
    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    ends = [r["trial"] for r in records(tmp_path / "s", "end")]
    assert sorted(ends) == [f"trial-00{i}" for i in range(4)]        # each trial ended once
    drills.record("`fastgan sweep` stopped by SIGINT or SIGTERM (started with SIGINT ignored)",
                  faults=1, survived=1, lost=0, detection_s=stopped_within,
                  note="finished trials kept; the same command ends each trial once")


def test_import_fastgan_does_not_import_dask():
    probe = "import sys, fastgan, fastgan.sweep; print('dask' in sys.modules or " \
            "'distributed' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ---------------------------------------------------------------- on a Dask LocalCluster
@pytest.fixture(scope="module")
def cluster(tmp_path_factory, tiny_recipe):
    """A LocalCluster of two single-threaded worker processes whose evaluation classifier is
    the quick test recipe (trained once, here, into the cache the workers read)."""
    distributed = pytest.importorskip("distributed", reason=NO_DASK)
    cache = tmp_path_factory.mktemp("sweep-cache")
    recipe = repr(dataclasses.asdict(tiny_recipe))
    preload = ("from fastgan.evaluation import classifier\n"
               "classifier.default_config = lambda n_features: "
               f"classifier.ClassifierConfig(**{recipe})\n")
    original, classifier.default_config = classifier.default_config, lambda n: tiny_recipe
    try:
        Evaluator.for_dataset("digits", n=100, cache_dir=cache)
    finally:
        classifier.default_config = original
    local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=None, silence_logs=logging.ERROR,
                                     preload=[preload], env={"FASTGAN_DATA": str(cache)})
    client = distributed.Client(local)
    yield client
    client.close()
    local.close()


def test_a_grid_on_a_local_cluster_records_every_trial_a_divergence_and_reruns_nothing(
        tmp_path):
    pytest.importorskip("distributed", reason=NO_DASK)
    out = tmp_path / "sweep"
    command = [*RING, "--grid", "lr=1e-3,1e30", "--grid", "batch_size=64,128", "--budget", "60",
               "--workers", "2", "--out", str(out)]
    assert cli.main(command) == 0
    ends = {r["trial"]: r for r in records(out, "end")}
    assert sorted(ends) == ["trial-000", "trial-001", "trial-002", "trial-003"]
    for name, end in ends.items():
        if end["setting"]["lr"] == 1e30:
            assert end["status"] == "diverged" and "training diverged" in end["error"]
        else:
            assert end["status"] == "completed" and end["step"] == 60
            assert fastgan.load(out / name).steps == 60
    assert "2 worker threads" in records(out, "session")[-1]["where"]
    saved = {name: (out / name / "checkpoint.npz").stat().st_mtime_ns
             for name in ("trial-000", "trial-001")}
    assert cli.main(command) == 0
    assert len(records(out, "end")) == 4
    assert records(out, "session")[-1]["where"] is None           # no cluster was needed
    assert saved == {name: (out / name / "checkpoint.npz").stat().st_mtime_ns for name in saved}
    summary = (out / "summary.md").read_text()
    assert summary.count("| diverged |") == 2 and summary.count("| completed |") == 2


def test_halving_keeps_the_best_and_a_resumed_trial_continues_bit_for_bit(cluster, tmp_path):
    results = sweep.run({"lr": [3e-4, 1e-3, 3e-3, 1e-2]}, tmp_path / "halving", base=BASE,
                        budget=90, eval_every=30, eval_n=100, halving_eta=2, client=cluster)
    ends = {(r["trial"], r["rung"]): r for r in records(tmp_path / "halving", "end")}
    scores = {(r["trial"], r["rung"]): r["frechet_distance"]
              for r in records(tmp_path / "halving", "eval")}      # the last of each segment
    assert {rung: sorted({e["step"] for (_, r), e in ends.items() if r == rung})
            for rung in range(3)} == {0: [23], 1: [45], 2: [90]}
    for rung in (0, 1):
        entered = [t for (t, r) in ends if r == rung]
        best = sorted(entered, key=lambda t: scores[(t, rung)])[:len(entered) // 2]
        assert sorted(t for (t, r) in ends if r == rung + 1) == sorted(best)
    (winner,) = [t for (t, r) in ends if r == 2]
    assert [row["rung"] for row in results if row["trial"] == winner] == [2]
    lr = ends[(winner, 2)]["setting"]["lr"]
    sweep.run({"lr": [lr]}, tmp_path / "straight", base=BASE, budget=90, eval_n=100,
              client=cluster)
    resumed = arrays(tmp_path / "halving" / winner / "checkpoint.npz")
    straight = arrays(tmp_path / "straight" / "trial-000" / "checkpoint.npz")
    assert resumed.keys() == straight.keys()
    for name in resumed:
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)
    assert records(tmp_path / "straight", "eval")[-1]["frechet_distance"] == scores[(winner, 2)]
    summary = (tmp_path / "halving" / "summary.md").read_text()
    assert "successive halving, eta 2: rungs 23 steps, 45 steps, 90 steps" in summary
    assert "181 steps planned of 360 steps without halving (50% saved)" in summary
    assert f"| 1 | lr={lr:g} | 2 | 1/1 |" in summary
    assert (tmp_path / "halving" / "samples.png").exists()
    if _has("matplotlib"):
        assert (tmp_path / "halving" / "curves.png").exists()


def test_a_sweep_over_architecture_axes_halves_and_names_them(cluster, tmp_path):
    """fast-dcgan on 8 x 8 digits: G's widths and upsampling in a TOML file, halved; the same
    grid on the command line is the same sweep."""
    study = tmp_path / "study.toml"
    study.write_text('preset = "fast-dcgan"\ndata = "digits"\nbackend = "numpy"\nbudget = 8\n'
                     'halving = 2\neval_n = 100\n[grid]\ng_filters = [[4, 2], [2, 2]]\n'
                     'upsample = ["transposed", "nearest"]\nd_filters = ["2 4"]\n')
    out = tmp_path / "sweep"
    scheduler = ("--scheduler", cluster.scheduler.address, "--no-progress", "--out", str(out))
    assert cli.main(["sweep", "--config", str(study), *scheduler]) == 0
    ends = records(out, "end")
    assert all(end["status"] == "completed" for end in ends)
    assert [sum(end["rung"] == rung for end in ends) for rung in range(3)] == [4, 2, 1]
    assert sorted((tuple(end["setting"]["g_filters"]), end["setting"]["upsample"])
                  for end in ends if end["rung"] == 0) == [
        ((2, 2), "nearest"), ((2, 2), "transposed"), ((4, 2), "nearest"), ((4, 2), "transposed")]
    for end in ends:
        record = json.loads((out / end["trial"] / "config.json").read_text())
        assert record["config"]["g_filters"] == end["setting"]["g_filters"]
        assert record["config"]["d_filters"] == [2, 4]
        generator = [layer["type"] for layer in record["model"]["generator"]]
        assert ("UpSampling2D" in generator) == (end["setting"]["upsample"] == "nearest")
        assert record["model"]["generator"][0]["units"] == 2 * 2 * end["setting"]["g_filters"][0]
    summary = (out / "summary.md").read_text()
    assert "varying: g_filters, upsample" in summary
    assert "successive halving, eta 2" in summary
    assert "| g_filters=4x2 upsample=nearest |" in summary
    assert cli.main(["sweep", "--preset", "fast-dcgan", "--data", "digits", "--backend", "numpy",
                     "--grid", "g_filters=4 2,2 2", "--grid", "upsample=transposed,nearest",
                     "--grid", "d_filters=2 4", "--budget", "8", "--halving", "2",
                     "--eval-n", "100", *scheduler]) == 0
    assert len(records(out, "end")) == len(ends)                  # the same sweep: nothing new


def test_an_unreachable_scheduler_fails_in_bounded_time(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed", reason=NO_DASK)
    monkeypatch.setattr(pools, "CONNECT_TIMEOUT_S", 1.0)
    message = one_line_error(capsys, [*RING, "--budget", "5", "--scheduler",
                                      "tcp://127.0.0.1:9", "--out", str(tmp_path / "s")])
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 1 s" in message
