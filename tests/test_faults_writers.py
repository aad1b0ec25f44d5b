"""Fault drill: two writers of one folder. A second ``fastgan train`` (``--resume RUN`` or
``--out RUN``) while the first trains in RUN, or a second ``fastgan sweep`` into a folder a sweep
is running in, is refused at once with one line naming the holder of the folder's lock; the
first goes on unharmed. The lock is the system's (``flock``), released with its process: a lock
file left by a killed process is taken over with a warning naming it, whatever it says; the
file is gone once a command ends, by itself, by an error or by SIGTERM. The library takes the
same lock.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.drills import record

from fastgan.cli import main as cli
from fastgan.runs.folder import TrainConfig, prepare
from fastgan.runs.lock import LOCK_NAME, FolderInUse, locked
from fastgan.sweep import run as sweep_run
from fastgan.training import checkpoint

pytestmark = pytest.mark.faults
signals_default = pytest.mark.parametrize("child_dispositions", [signal.SIG_DFL],
                                          ids=["signals-default"], indirect=True)

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
TRAIN = ("train", "--preset", "tiny", "--data", "ring", "--backend", "numpy", "--no-progress")
SWEEP = ("sweep", "--preset", "tiny", "--data", "ring", "--backend", "numpy", "--no-progress",
         "--grid", "lr=1e-3,2e-3", "--budget", "1000000", "--workers", "1", "--out", "s")
TIMEOUT = 120          # seconds for anything to happen before the drill fails


def fastgan(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastgan", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=TIMEOUT)


def start(args: tuple[str, ...], cwd: Path, preexec) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fastgan", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec)


def wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def refused(result: subprocess.CompletedProcess, folder: str, pid: int) -> None:
    """``result`` is a one-line refusal naming process ``pid`` and ``folder``'s lock."""
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"fastgan: error: {folder} is in use by process {pid} on host "
                               f"{socket.gethostname()} since "), lines
    assert f"(its lock {folder}/{LOCK_NAME})" in lines[0]


def lock_of(folder: Path) -> dict:
    return json.loads((folder / LOCK_NAME).read_text())


def stop(process: subprocess.Popen) -> str:
    """SIGTERM ``process``; its standard error once it has ended with status 143."""
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    return stderr


@contextmanager
def held_by_another_process(folder: Path) -> Iterator[subprocess.Popen]:
    """``folder``'s lock held by a child process (as ``fastgan`` holds it) within the block;
    at the end, the child (if it still runs) unlocks and ends."""
    with subprocess.Popen(
            [sys.executable, "-c", "import sys\nfrom fastgan.runs.lock import locked\n"
             "with locked(sys.argv[1]):\n    print('held', flush=True)\n    sys.stdin.read()",
             str(folder)], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True) as holder:
        assert holder.stdout.readline() == "held\n"
        yield holder
        # leaving the block closes its stdin (ending it, unless it was killed) and waits


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    """A run folder trained 20 steps."""
    result = fastgan(*TRAIN, "--steps", "20", "--out", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / "run"


@pytest.fixture
def training(tmp_path: Path, child_dispositions) -> Iterator[subprocess.Popen]:
    """``fastgan train --out run`` training a million steps, once its first checkpoint is
    saved; killed at the end should the test leave it running."""
    process = start((*TRAIN, "--steps", "1000000", "--log-every", "10",
                     "--checkpoint-every", "50", "--out", "run"), tmp_path, child_dispositions)
    try:
        wait_for(tmp_path / "run" / checkpoint.CHECKPOINT_NAME, process)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@signals_default
def test_a_second_train_is_refused_and_the_first_trains_on(tmp_path, training):
    run = tmp_path / "run"
    assert lock_of(run)["pid"] == training.pid
    config = (run / "config.json").read_bytes()
    longest = 0.0
    for second in (("train", "--resume", "run", "--no-progress"),
                   (*TRAIN, "--steps", "10", "--out", "run")):
        began = time.monotonic()
        refused(fastgan(*second, cwd=tmp_path), "run", training.pid)
        longest = max(longest, time.monotonic() - began)
        assert (run / "config.json").read_bytes() == config
    stderr = stop(training)
    assert "fastgan: stopped by SIGTERM; checkpoint at step" in stderr
    assert not (run / LOCK_NAME).exists()
    steps = checkpoint.read_metadata(run)["progress"]["steps"]
    resumed = fastgan("train", "--resume", "run", "--steps", str(steps + 5), "--no-progress",
                      cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint.read_metadata(run)["progress"]["steps"] == steps + 5
    assert not (run / LOCK_NAME).exists()
    record("two writers: a second `fastgan train --resume RUN` or `--out RUN` while RUN trains",
           faults=2, survived=2, detection_s=longest,
           note="refused at once, one line naming the lock's process; the first trains on, "
                "stops on SIGTERM (143) and resumes")


@signals_default
def test_a_second_sweep_into_one_folder_is_refused(tmp_path, child_dispositions):
    first = start(SWEEP, tmp_path, child_dispositions)
    try:
        wait_for(tmp_path / "s" / "trial-000" / "config.json", first)
        identity = (tmp_path / "s" / "sweep.json").read_bytes()
        began = time.monotonic()
        refused(fastgan(*SWEEP, cwd=tmp_path), "s", first.pid)
        took = time.monotonic() - began
        assert (tmp_path / "s" / "sweep.json").read_bytes() == identity
        stderr = stop(first)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert "re-run the same command to continue" in stderr
    assert not (tmp_path / "s" / LOCK_NAME).exists()
    assert (tmp_path / "s" / "summary.md").exists()
    record("two writers: a second `fastgan sweep` into the folder of a running sweep", faults=1,
           survived=1, detection_s=took,
           note="refused at once; the first sweep goes on and stops on SIGTERM with its report")


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_warning(trained):
    with held_by_another_process(trained) as holder:
        holder.kill()                               # SIGKILL: the lock file stays behind
        holder.wait()
    left = lock_of(trained)
    assert left["pid"] == holder.pid
    result = fastgan("train", "--resume", "run", "--steps", "25", "--no-progress",
                     cwd=trained.parent)
    assert result.returncode == 0, result.stderr
    assert (f"fastgan: warning: run was locked by process {holder.pid} on host "
            f"{left['host']} since {left['since']}, which ended without unlocking it (killed?); "
            "taking its lock run/.lock over" in result.stderr), result.stderr
    assert checkpoint.read_metadata(trained)["progress"]["steps"] == 25
    assert not (trained / LOCK_NAME).exists()
    record("a lock left by a SIGKILLed process", faults=1, survived=1,
           note="the system released it with its process: taken over with a warning naming it")


@pytest.mark.parametrize("left", [
    json.dumps({"pid": 4242, "host": "elsewhere.example", "since": "2026-01-01 00:00:00"}),
    "{\"pid\": 42",
], ids=["another-host", "unreadable"])
def test_a_lock_file_nobody_holds_is_taken_over_whatever_it_says(trained, left):
    (trained / LOCK_NAME).write_text(left)
    result = fastgan("train", "--resume", "run", "--steps", "25", "--no-progress",
                     cwd=trained.parent)
    assert result.returncode == 0, result.stderr
    who = ("process 4242 on host elsewhere.example since 2026-01-01 00:00:00"
           if "elsewhere" in left else "a command")
    assert f"fastgan: warning: run was locked by {who}, which ended" in result.stderr
    assert checkpoint.read_metadata(trained)["progress"]["steps"] == 25


def test_the_lock_is_gone_after_an_end_and_after_an_error(trained, capsys, monkeypatch):
    assert not (trained / LOCK_NAME).exists()          # a normal end
    monkeypatch.chdir(trained.parent)
    capsys.readouterr()
    assert cli.main(["train", "--resume", "run", "--preset", "fast-mlp"]) == 1
    assert "a resumed run keeps its settings" in capsys.readouterr().err
    assert not (trained / LOCK_NAME).exists()
    assert cli.main(["train", "--resume", "missing"]) == 1
    assert not Path("missing").exists()                 # the folder made for the lock is gone


@pytest.mark.filterwarnings("error::UserWarning")     # no lock left behind to take over
def test_the_library_takes_the_lock_too(trained):
    with held_by_another_process(trained) as holder, pytest.raises(
            FolderInUse, match=f"run is in use by process {holder.pid} on "):
        prepare(resume=trained)
    config = TrainConfig(preset="tiny", data="ring", backend="numpy")
    with locked(trained) as folder:                     # a block within shares the lock
        run = prepare(resume=folder, changes={"steps": 22})
        run.train(progress=False)
        assert lock_of(trained)["pid"] == os.getpid()
    assert not (trained / LOCK_NAME).exists()
    sweep_folder = trained.parent / "s"
    sweep_folder.mkdir()
    with held_by_another_process(sweep_folder) as holder:
        with pytest.raises(FolderInUse, match=f"s is in use by process {holder.pid} on "):
            sweep_run({"lr": [1e-3]}, sweep_folder, budget=5, base=config, workers=1)
        assert sorted(p.name for p in sweep_folder.iterdir()) == [LOCK_NAME]
