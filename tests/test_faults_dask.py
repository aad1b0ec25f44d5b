"""Fault drills for ``fastgan sweep`` on an existing Dask cluster: a scheduler and two workers
started as separate processes (``dask scheduler``, ``dask worker``), as on a real cluster.

* **A worker killed** (SIGKILL, mid-trial): the scheduler runs the lost task again on a
  worker; the trial continues from the checkpoint its first attempt saved (its end record says
  ``attempt`` 2 and ``resumed_from``) and ends where an uninterrupted trial ends, bit for bit;
  every trial ends exactly once.
* **The scheduler killed** (SIGKILL): ``fastgan sweep`` stops within a bounded time with one
  error line and exit status 1, keeping every finished result; the workers, orphaned, save
  their trials' checkpoints and end; the same command on a new scheduler finishes the rest.

Trials train the tiny preset on the ring with budgets in steps, so what they end with is
exactly repeatable. Every process runs in its own session and is killed with its group when
the test ends, whatever happened.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from support.drills import record
from support.limits import file_size_limit
from support.processes import Processes
from test_sweep import BASE, NO_DASK, RING, ROOT, arrays, records

from fastgan import sweep
from fastgan.sweep import trial
from fastgan.training.loop import DEFAULT_LOG_EVERY

distributed = pytest.importorskip("distributed", reason=NO_DASK)

pytestmark = [pytest.mark.faults,
              pytest.mark.parametrize("child_dispositions", [signal.SIG_DFL],
                                      ids=["signals-default"], indirect=True)]

DASK = str(Path(sys.executable).parent / "dask")
BUDGET = 6000          # steps per trial: about 5 s of training each on one core here
GRID = ("--grid", "lr=1e-3,2e-3,3e-3,4e-3")
TIMEOUT = 180          # seconds for anything to happen before the drill fails
RESULTS_LIMIT = 1024
"""Bytes the sweep's own process may write to a file in the file-size drill: sweep.json
(about 400) fits, results.jsonl about three records (the trials' files are the workers')."""
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture
def processes(tmp_path: Path, child_dispositions: Callable[[], None]) -> Iterator[Processes]:
    """Processes started for a drill, all ended when it ends."""
    with Processes(tmp_path, ENV, child_dispositions) as started:
        yield started


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_cluster(processes: Processes, port: int, name: str) -> list[subprocess.Popen]:
    """A scheduler on ``port`` and two single-threaded workers (each under a nanny, as
    ``dask worker`` starts by default), once both have registered: [scheduler, w1, w2]."""
    address = f"tcp://127.0.0.1:{port}"
    started = [processes.start([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                "--no-dashboard"], f"{name}-scheduler")]
    for number in (1, 2):
        started.append(processes.start([DASK, "worker", address, "--nworkers", "1",
                                        "--nthreads", "1", "--host", "127.0.0.1",
                                        "--no-dashboard"], f"{name}-worker{number}"))
    with distributed.Client(address, timeout=TIMEOUT) as client:
        client.wait_for_workers(2, timeout=TIMEOUT)
    return started


def sweep_command(port: int) -> list[str]:
    """The sweep of every drill: four trials of BUDGET steps on the scheduler at ``port``."""
    return [sys.executable, "-m", "fastgan", *RING, *GRID, "--budget", str(BUDGET),
            "--scheduler", f"tcp://127.0.0.1:{port}", "--out", "sweep"]


def wait_for(condition: Callable[[], object], what: str, process: subprocess.Popen) -> object:
    """Poll ``condition`` until it returns something true (returned), failing the drill if
    ``process`` ends first or TIMEOUT passes."""
    deadline = time.monotonic() + TIMEOUT
    while not (value := condition()):
        assert process.poll() is None, f"the sweep ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {TIMEOUT} s"
        time.sleep(0.05)
    return value


def last_logged_step(folder: Path) -> int:
    """The last step a trial's metrics.jsonl logged (0 before any)."""
    path = folder / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    steps = [json.loads(line)["step"] for line in lines if '"log"' in line]
    return max(steps, default=0)


def attempt(folder: Path) -> dict | None:
    """A trial's attempt note (attempt.json), or None before its first attempt wrote one."""
    try:
        return json.loads((folder / trial.ATTEMPT_FILE).read_text())
    except (OSError, ValueError):
        return None


def midway_trial(out: Path) -> tuple[str, dict, int] | None:
    """A trial between a quarter and half of its budget (so that it neither has ended nor
    will in the next seconds), with its attempt note and the step it logged last."""
    for folder in sorted(out.glob("trial-*")):
        note, step = attempt(folder), last_logged_step(folder)
        if note and BUDGET // 4 <= step <= BUDGET // 2:
            return folder.name, note, step
    return None


def redone(end: dict, reached: int) -> int:
    """The steps a trial that had ``reached`` a step when its attempt was cut short had to
    train again, by its end record (an attempt 1 is the one that was not cut short)."""
    return 0 if end["attempt"] == 1 else max(reached - (end["resumed_from"] or 0), 0)


def ends_by_trial(out: Path) -> dict[str, dict]:
    """Every end record by trial, checking that each trial ended exactly once."""
    ends = records(out, "end")
    assert len(ends) == len({end["trial"] for end in ends}) == 4, ends
    return {end["trial"]: end for end in ends}


def test_a_killed_worker_costs_its_trial_only_the_steps_since_its_checkpoint(
        tmp_path, processes):
    port = free_port()
    start_cluster(processes, port, "cluster")
    out = tmp_path / "sweep"
    process = processes.start(sweep_command(port), "sweep")
    name, note, _ = wait_for(lambda: midway_trial(out), "a trial midway", process)
    os.kill(note["pid"], signal.SIGKILL)                # the worker process, not its nanny
    killed_at = time.monotonic()
    died_at_step = last_logged_step(out / name)
    wait_for(lambda: (attempt(out / name) or {}).get("attempt") == 2, "second attempt", process)
    detected = time.monotonic() - killed_at
    assert process.wait(timeout=TIMEOUT) == 0, (tmp_path / "sweep.log").read_text()

    ends = ends_by_trial(out)
    assert all(end["status"] == "completed" and end["step"] == BUDGET for end in ends.values())
    retried = ends.pop(name)
    assert retried["attempt"] == 2
    assert BUDGET // 10 <= retried["resumed_from"] <= died_at_step, (retried, died_at_step)
    assert all(end["attempt"] == 1 and end["resumed_from"] is None for end in ends.values())
    assert f"- {name}: attempt 2 at rung 0, resumed from step {retried['resumed_from']}" in (
        out / "summary.md").read_text()

    straight = sweep.run({"lr": [retried["setting"]["lr"]]}, tmp_path / "straight",
                         base=dataclasses.replace(BASE, data="ring"), budget=BUDGET, workers=1)
    assert straight[0]["d_loss"] == retried["d_loss"]
    resumed, uninterrupted = (arrays(folder / "checkpoint.npz")
                              for folder in (out / name, tmp_path / "straight" / "trial-000"))
    assert resumed.keys() == uninterrupted.keys()
    for key in resumed:
        np.testing.assert_array_equal(resumed[key], uninterrupted[key], err_msg=key)
    record("Dask worker SIGKILLed mid-trial (sweep on a separate scheduler)", faults=1,
           survived=1, lost=redone(retried, died_at_step), detection_s=detected,
           note=f"the trial's second attempt resumed from step {retried['resumed_from']} of "
                f"{BUDGET} and ended bit for bit as an uninterrupted one; lost: steps since "
                "its checkpoint (to the last 50-step log); detected: kill to the new attempt")


def test_a_killed_scheduler_stops_the_sweep_and_a_new_one_finishes_it(tmp_path, processes):
    port = free_port()
    scheduler, *workers = start_cluster(processes, port, "first")
    out = tmp_path / "sweep"
    command = sweep_command(port)
    process = processes.start(command, "sweep")
    name, _, midway = wait_for(lambda: records(out, "end") and midway_trial(out),
                               "a trial ended and another midway", process)
    kept = records(out, "end")
    os.killpg(scheduler.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    assert process.wait(timeout=TIMEOUT) == 1
    detected = time.monotonic() - killed_at
    lines = (tmp_path / "sweep.log").read_text().splitlines()
    errors = [line for line in lines if line.startswith("fastgan: error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], lines
    assert errors[0].startswith(f"fastgan: error: lost the Dask scheduler at "
                                f"tcp://127.0.0.1:{port}")
    assert "re-run the same command" in errors[0] and "Traceback" not in "\n".join(lines)
    assert records(out, "end") == kept                  # nothing lost, no trial marked failed
    assert records(out, "session")[-1]["interrupted"] is True
    assert "the last stopped early, **lost the Dask scheduler" in (
        out / "summary.md").read_text()
    for worker in workers:                              # orphans end, saving their trials
        worker.wait(timeout=TIMEOUT)
    orphaned = time.monotonic() - killed_at
    cut = {folder.name: last_logged_step(folder) for folder in out.glob("trial-*")
           if folder.name not in {end["trial"] for end in kept}}

    start_cluster(processes, port, "second")
    rerun = processes.start(command, "rerun")
    assert rerun.wait(timeout=TIMEOUT) == 0, (tmp_path / "rerun.log").read_text()
    ends = ends_by_trial(out)
    assert all(end["status"] == "completed" and end["step"] == BUDGET for end in ends.values())
    assert ends[name]["attempt"] == 2                  # its orphan saved where it stopped:
    assert midway <= ends[name]["resumed_from"] < cut[name] + DEFAULT_LOG_EVERY   # after a log
    resumed = [name for name in cut if ends[name]["resumed_from"] is not None]
    lost = sum(redone(ends[name], step) for name, step in cut.items())
    record("Dask scheduler SIGKILLed mid-sweep", faults=1, survived=1, lost=lost,
           detection_s=detected,
           note=f"fastgan sweep exited 1 with one error line, {len(kept)} finished trial(s) "
                f"kept; the orphaned workers saved {len(resumed)} trial(s) and ended within "
                f"{orphaned:.1f} s; the same command on a new scheduler resumed them and "
                "finished the sweep, each trial ended once; detected: kill to the sweep's exit")


def test_sweep_results_that_find_no_room_stop_it_in_one_line_and_the_same_command_finishes(
        tmp_path, processes):
    port = free_port()
    start_cluster(processes, port, "cluster")
    out = tmp_path / "sweep"
    command = sweep_command(port)
    process = processes.start(command, "sweep",
                              preexec=file_size_limit(RESULTS_LIMIT, processes.preexec))
    assert process.wait(timeout=TIMEOUT) == 1
    lines = (tmp_path / "sweep.log").read_text().splitlines()
    errors = [line for line in lines if line.startswith("fastgan: error:")]
    assert errors == [lines[-1]] == ["fastgan: error: no space left for sweep/results.jsonl: "
                                     "the file-size limit was reached (File too large)"], lines
    assert "Traceback" not in "\n".join(lines)
    kept = (out / "results.jsonl").read_bytes()
    assert 0 < len(kept) <= RESULTS_LIMIT
    kept_records = [json.loads(line) for line in kept.splitlines()]     # every line whole
    assert not list(out.rglob(".*.tmp"))

    rerun = processes.start(command, "rerun")
    assert rerun.wait(timeout=TIMEOUT) == 0, (tmp_path / "rerun.log").read_text()
    assert (out / "results.jsonl").read_bytes().startswith(kept)
    ends = ends_by_trial(out)
    assert all(end["status"] == "completed" and end["step"] == BUDGET for end in ends.values())
    recorded = {r["trial"] for r in kept_records if r["event"] == "end"}
    assert recorded and all(ends[name]["attempt"] == 1 for name in recorded)
    record("`fastgan sweep` finds no room for results.jsonl (a file-size limit, EFBIG)",
           faults=1, survived=1,
           note=f"exit 1 with `no space left for sweep/results.jsonl`; the {len(recorded)} "
                "results recorded before kept whole, no line cut short, no temporary file; "
                "the same command, with room, finished the sweep, each trial ended once")
