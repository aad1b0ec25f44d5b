"""Fault drill: ``fastgan train`` killed at random moments, by SIGTERM and by SIGKILL.

Each drill is a chain: a run starts, is killed, is resumed (``--resume``), the resumed process
is killed in turn, and so on through :data:`MOMENTS`, twenty kills; a last resume trains the
run to its end. The run is tiny, its checkpoint writes are frequent and it logs every step, so
that metrics.jsonl tells the last step each process trained. The SIGKILL chain checkpoints
every step (``--checkpoint-every 1``); the SIGTERM chain every 7 steps, so that the last steps
trained are kept by the checkpoint the stop saves, not by the last periodic one. The moments,
their random delays drawn from a seeded generator:

* ``folder written``: as soon as the process has written config.json, before it trains (the
  chain's first kill: a fresh run, its folder made, no checkpoint in it yet);
* ``start-up``: 0 to 0.6 s after the process started (Python importing, the run opening, the
  first steps);
* ``checkpoint write``: while a checkpoint's temporary file exists, i.e. inside a write;
* ``training``: 0 to 0.3 s after the process's first checkpoint.

The process is stopped (SIGSTOP) as soon as config.json or a temporary file is seen, and gets
the signal while it stands there (then SIGCONT): a kill inside a write is certain.

After every kill: the run folder loads (``fastgan.load``) or, killed before the first
checkpoint, says it has none (``--resume`` then trains it from the start); checkpoints only go
forward; a SIGTERM loses no step (the checkpoint holds the last step trained, the ``end``
record says ``stopped`` at that step) and leaves no temporary file (one that comes while Python
starts, before ``fastgan`` runs, ends the process as the default action does, with nothing
trained); a SIGKILL loses at most the step since the last checkpoint. At the end, the chain's
run equals an uninterrupted run of the same steps, bit for bit (numpy backend, this machine).

Temporary files left by a SIGKILL inside a write (``.checkpoint.npz.<hex>.tmp``) are harmless
until then (hidden names nothing fastgan reads matches, and every write makes a new one of its
own) and removed by the next ``--resume``, which holds the folder's lock.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from support.drills import record
from support.processes import Processes

import fastgan
from fastgan.errors import CheckpointError
from fastgan.training import checkpoint
from fastgan.training.monitors import read_records

pytestmark = [pytest.mark.faults,
              pytest.mark.parametrize("child_dispositions", [signal.SIG_DFL],
                                      ids=["signals-default"], indirect=True)]

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
RUN = ("--preset", "tiny", "--data", "ring", "--g-hidden", "16", "--d-hidden", "16",
       "--batch-size", "32", "--backend", "numpy", "--threads", "1")
STEPS_PER_EPOCH = 128          # 4096 points of the ring in batches of 32
END_STEP = 2000
"""Where every run ends: far beyond what a chain's processes train before their kills."""
FINISH = ("--checkpoint-every", "0", "--log-every", "50")
"""How the last process of a chain and the uninterrupted run train (quicker; the same steps)."""
MOMENTS = ("folder written", "start-up", "checkpoint write", "training", "start-up",
           "checkpoint write", "training", "folder written", "checkpoint write", "training",
           "start-up", "training", "checkpoint write", "start-up", "training",
           "checkpoint write", "folder written", "training", "start-up", "checkpoint write")
"""The chain's kills in order; the first comes to a fresh run, before its first checkpoint."""
SEED = 20261205
TIMEOUT = 60                   # seconds for anything to happen before the drill fails
POLL_S = 0.0005


def identity(path: Path) -> tuple[int, int] | None:
    """What tells one version of a file from the next (an atomic write makes a new inode)."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns


def saved_step(run: Path) -> int | None:
    """The step of the run's checkpoint (None: there is none)."""
    if not (run / checkpoint.CHECKPOINT_NAME).exists():
        return None
    return checkpoint.read_metadata(run)["progress"]["steps"]


def temporaries(run: Path) -> set[Path]:
    """The temporary files of atomic writes anywhere in the run folder."""
    return set(run.rglob(".*.tmp"))


@dataclass(frozen=True)
class Before:
    """The run folder as a process found it."""

    saved: int | None
    checkpoint: tuple[int, int] | None
    config: tuple[int, int] | None
    metrics: bytes | None
    temporaries: frozenset[Path]

    @classmethod
    def of(cls, run: Path) -> Before:
        """Look at ``run`` now."""
        metrics = run / "metrics.jsonl"
        return cls(saved_step(run), identity(run / checkpoint.CHECKPOINT_NAME),
                   identity(run / "config.json"),
                   metrics.read_bytes() if metrics.exists() else None,
                   frozenset(temporaries(run)))

    def last_trained(self, run: Path) -> int:
        """The last step a process that started from this trained, as metrics.jsonl tells
        (a file it did not change: none past its checkpoint)."""
        metrics = run / "metrics.jsonl"
        if not metrics.exists() or metrics.read_bytes() == self.metrics:
            return self.saved or 0
        return max((r["step"] for r in read_records(metrics) if r.get("event") == "log"),
                   default=self.saved or 0)


def fastgan_command(*args: str) -> list[str]:
    """``python -m fastgan ARGS``."""
    return [sys.executable, "-m", "fastgan", *args]


@pytest.fixture
def processes(tmp_path: Path, child_dispositions: Callable[[], None]) -> Iterator[Processes]:
    """Processes started for a drill, all ended when it ends."""
    with Processes(tmp_path, ENV, child_dispositions) as started:
        yield started


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run trained to END_STEP in one go."""
    cwd = tmp_path_factory.mktemp("uninterrupted")
    result = subprocess.run([sys.executable, "-m", "fastgan", "train", *RUN, *FINISH,
                             "--steps", str(END_STEP), "--no-progress", "--out", "run"],
                            cwd=cwd, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return cwd / "run"


def wait_for(condition: Callable[[], object], process: subprocess.Popen, what: str) -> None:
    """Poll until ``condition()`` holds; fail if ``process`` ends first or it takes too long."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert process.poll() is None, f"the process ended ({process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {TIMEOUT} s"
        time.sleep(POLL_S)


def pause(process: subprocess.Popen) -> None:
    """Stop ``process`` (SIGSTOP) and wait until it stands still."""
    process.send_signal(signal.SIGSTOP)
    _, status = os.waitpid(process.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"the process ended ({status}) instead of stopping"


def signal_at(moment: str, process: subprocess.Popen, signum: int, run: Path, before: Before,
              rng: random.Random) -> None:
    """Send ``signum`` to ``process`` at ``moment`` (one of MOMENTS)."""
    if moment == "start-up":
        time.sleep(rng.uniform(0.0, 0.6))
    elif moment == "training":
        wait_for(lambda: identity(run / checkpoint.CHECKPOINT_NAME) != before.checkpoint,
                 process, "a checkpoint")
        time.sleep(rng.uniform(0.0, 0.3))
    elif moment == "folder written":
        wait_for(lambda: identity(run / "config.json") != before.config, process,
                 "config.json written")
        pause(process)
    elif moment == "checkpoint write":
        def writing() -> bool:
            return any(path.name.startswith(".checkpoint.npz.")
                       for path in temporaries(run) - before.temporaries)
        while True:
            wait_for(writing, process, "a checkpoint write")
            pause(process)
            if writing():
                break
            process.send_signal(signal.SIGCONT)        # the write ended meanwhile: next one
    process.send_signal(signum)
    process.send_signal(signal.SIGCONT)


@dataclass(frozen=True)
class Kill:
    """What one kill did: its moment, the process's exit status and stderr, the steps it
    lost, the checkpoint step it left (None: none), whether it left temporary files and how
    long the process took to end after the signal."""

    moment: str
    status: int
    stderr: str
    lost: int
    saved: int | None
    left_temporaries: bool
    seconds: float


def kill_chain(processes: Processes, signum: int, checkpoint_every: int,
               check: Callable[[Kill, Path], None]) -> tuple[list[Kill], Path]:
    """Start a run, kill it at each of MOMENTS, each time checking the folder (and what
    ``check`` checks of the kill) and resuming it (or starting it again where it has no
    checkpoint yet); returns the kills and the run folder, ready for its last resume."""
    rng = random.Random(SEED + signum)
    run = processes.folder / "run"
    kills = []
    for moment in MOMENTS:
        args = start_or_resume(run, "--checkpoint-every", str(checkpoint_every),
                               "--log-every", "1")
        before = Before.of(run)
        process = processes.start(fastgan_command(*args))
        signal_at(moment, process, signum, run, before, rng)
        sent = time.monotonic()
        status = process.wait(timeout=TIMEOUT)
        ended = time.monotonic()
        saved = saved_step(run)
        kill = Kill(moment, status, processes.output(process),
                    before.last_trained(run) - (saved or 0), saved,
                    bool(temporaries(run) - before.temporaries), ended - sent)
        check_the_folder(processes, run, before, kill)
        check(kill, run)
        kills.append(kill)
    assert kills[0].saved is None, "the first kill came after the first checkpoint"
    return kills, run


def start_or_resume(run: Path, *options: str) -> tuple[str, ...]:
    """The arguments that resume ``run``, or that start it anew where it was killed before it
    wrote its config.json (what a user does with such a folder: delete it, start again)."""
    if (run / "config.json").exists():
        return ("train", "--resume", run.name, "--no-progress", *options)
    shutil.rmtree(run, ignore_errors=True)
    return ("train", *RUN, "--steps", str(END_STEP), "--no-progress", "--out", run.name,
            *options)


def check_the_folder(processes: Processes, run: Path, before: Before, kill: Kill) -> None:
    """After a kill: the folder loads (or says it holds no checkpoint yet), and the
    checkpoint did not go back."""
    if kill.saved is None:
        assert before.saved is None, f"the checkpoint at step {before.saved} is gone"
        with pytest.raises(CheckpointError, match="no checkpoint at"):
            fastgan.load(run)
        return
    assert kill.saved >= (before.saved or 0)
    assert fastgan.load(run).steps == kill.saved




def finish_and_compare(processes: Processes, run: Path, uninterrupted: Path) -> None:
    """Train the chain's run to its end and check it equals the uninterrupted run."""
    process = processes.start(fastgan_command(*start_or_resume(run, *FINISH)))
    assert process.wait(timeout=TIMEOUT) == 0, processes.output(process)
    assert f"fastgan: done at step {END_STEP}" in processes.output(process)
    chained, straight = (checkpoint.read(folder) for folder in (run, uninterrupted))
    assert chained.arrays.keys() == straight.arrays.keys()
    for name in chained.arrays:
        np.testing.assert_array_equal(chained.arrays[name], straight.arrays[name], name)
    for key in ("progress", "rng"):
        assert chained.metadata[key] == straight.metadata[key], key


def counted(kills: list[Kill], condition: Callable[[Kill], bool]) -> int:
    """How many of ``kills`` meet ``condition``."""
    return sum(1 for kill in kills if condition(kill))


def check_a_sigterm(kill: Kill, run: Path) -> None:
    """A SIGTERM lost no step. Once the handlers were installed, it left no temporary file,
    and one that came while training finished the step, saved it and wrote the ``end`` record
    at that step (one that came before ended the process, with nothing trained)."""
    assert kill.lost == 0, kill
    if kill.status == -signal.SIGTERM:
        assert "SIGTERM" not in kill.stderr, kill
        return
    assert kill.status == 143, kill
    assert not kill.left_temporaries, kill
    if "checkpoint at step" in kill.stderr:
        assert f"stopped by SIGTERM; checkpoint at step {kill.saved} saved" in kill.stderr
        end = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        assert end == {"event": "end", "outcome": "stopped", "step": kill.saved,
                       "epoch": kill.saved // STEPS_PER_EPOCH}, kill
    else:
        assert kill.stderr.endswith("fastgan: stopped by SIGTERM\n"), kill


def check_a_sigkill(kill: Kill, run: Path) -> None:
    """A SIGKILL lost at most the step since the last checkpoint (``--checkpoint-every 1``)."""
    assert kill.status == -signal.SIGKILL, kill
    assert 0 <= kill.lost <= 1, kill


def test_sigterm_at_random_moments_loses_no_step_and_the_chain_ends_as_an_unbroken_run(
        processes, uninterrupted):
    kills, run = kill_chain(processes, signal.SIGTERM, 7, check_a_sigterm)
    finish_and_compare(processes, run, uninterrupted)
    stopped = counted(kills, lambda kill: "checkpoint at step" in kill.stderr)
    early = counted(kills, lambda kill: kill.status == -signal.SIGTERM)
    record(f"`fastgan train` SIGTERMed at random moments ({len(kills)} kills, each resumed)",
           faults=len(kills), survived=len(kills), lost=0,
           detection_s=max(kill.seconds for kill in kills),
           note=f"moments: start-up, folder written, inside a checkpoint write, training; "
                f"{stopped} finished the step and saved it (the end record `stopped` at "
                f"the checkpoint's step), {early} came while Python started, before fastgan "
                f"ran (the process ended, nothing trained), "
                f"{counted(kills, lambda kill: kill.saved is None)} left no checkpoint yet "
                f"(`--resume` trained it from the start); no temporary file left by a "
                f"handled one; "
                f"the chain ended bit for bit as an uninterrupted run")


def test_sigkill_at_random_moments_loses_at_most_the_step_since_the_checkpoint(
        processes, uninterrupted):
    kills, run = kill_chain(processes, signal.SIGKILL, 1, check_a_sigkill)
    inside_writes = [kill for kill in kills if kill.moment == "checkpoint write"]
    assert inside_writes and all(kill.left_temporaries for kill in inside_writes)
    strays = temporaries(run)
    assert all(path.name.startswith(".") for path in strays)
    finish_and_compare(processes, run, uninterrupted)      # with the strays where they were
    assert not temporaries(run)                            # removed by the last --resume
    record(f"`fastgan train` SIGKILLed at random moments ({len(kills)} kills, each resumed)",
           faults=len(kills), survived=len(kills), lost=sum(kill.lost for kill in kills),
           note=f"moments: start-up, folder written, inside a checkpoint write "
                f"({len(inside_writes)}), training; lost: the steps since the last checkpoint "
                f"(at most 1 with --checkpoint-every 1); "
                f"{counted(kills, lambda kill: kill.saved is None)} left no checkpoint yet "
                f"(`--resume` trained it from the start); temporary files of interrupted "
                f"writes never read, removed by the next `--resume`; "
                f"the chain ended bit for bit as an uninterrupted run")
