"""Fault drills for data-parallel training under ``mpiexec -n 2``, and the handshake that keeps a
failing rank's last lines.

* **A rank killed** (SIGKILL, mid-training, in or around an all-reduce): the launcher ends the
  other rank and exits non-zero within a bounded time, naming the lost process; the last
  checkpoint loads and ``--resume`` on two ranks continues from it.
* **A rank that fails alone** prints its error and calls ``MPI_Abort``; before aborting it waits
  until the launcher has read its lines (:func:`fastgan.distributed.mpi.wait_until_read`), so
  the error is never lost, even on a loaded machine. The handshake is tested on pipes here, and
  the whole launch is repeated with CPU hogs beside it. Run as a script for more repeats:

      python tests/test_faults_mpi.py --runs 50

The launches reuse tests/test_distributed.py's helpers (timeouts, sessions, ``train_ranks``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.drills import record
from test_distributed import (
    LAUNCH_TIMEOUT,
    MPIEXEC,
    QUICK,
    RESUMED,
    SUPPORT,
    end_session,
    launch_ranks,
    needs_mpi,
    rank_records,
    train_ranks,
)

import fastgan
from fastgan.distributed.mpi import wait_until_read

FAILURE_LINES = ("planted failure on rank 1", "error on rank 1 of 2")
"""What ``distributed_worker.py fail-alone`` must show: rank 1's error and fastgan's line."""
CHECKPOINT_EVERY = 100


def rank_pid(command_part: str, rank: int) -> int | None:
    """The process id of MPI rank ``rank`` among the processes whose command line holds
    ``command_part`` (read from each candidate's environment: the launcher's ``PMI_RANK``)."""
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:           # not a process, or one that has ended
            continue
        if command_part in command and f"PMI_RANK={rank}".encode() in environment:
            return int(entry.name)
    return None


def logged_step(run: Path) -> int:
    """The last step the run's metrics.jsonl logged (0 before any)."""
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return max((json.loads(line)["step"] for line in lines if '"log"' in line), default=0)


@needs_mpi
@pytest.mark.faults
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("child_dispositions", [signal.SIG_DFL], ids=["signals-default"],
                         indirect=True)
def test_a_killed_rank_ends_the_launch_and_the_run_resumes_from_its_checkpoint(
        tmp_path, child_dispositions):
    run = tmp_path / "run"
    runner = [str(SUPPORT / "distributed_cli.py"), str(tmp_path), "train"]
    command = [MPIEXEC, "-n", "2", sys.executable, *runner, "--steps", "1000000",
               "--checkpoint-every", str(CHECKPOINT_EVERY), "--out", str(run), *QUICK]
    with subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True,
                          preexec_fn=child_dispositions) as process:
        try:
            deadline = time.monotonic() + LAUNCH_TIMEOUT
            while logged_step(run) < 2.5 * CHECKPOINT_EVERY:     # two checkpoints written
                assert process.poll() is None and time.monotonic() < deadline, \
                    "training did not get going"
                time.sleep(0.05)
            pid = rank_pid(f"distributed_cli.py {tmp_path} train", 1)
            assert pid is not None, "rank 1 not found"
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            output, _ = process.communicate(timeout=LAUNCH_TIMEOUT)
            ended_in = time.monotonic() - killed_at
        finally:
            if process.poll() is None:
                end_session(process)
    reached = logged_step(run)
    assert process.returncode != 0
    # Whoever notices first says so: the launcher (MPICH's Hydra: rank 1 killed by signal 9,
    # then it ends rank 0), rank 0 whose all-reduce fails (fastgan's line naming rank 1, then
    # MPI_Abort), or MPICH inside that all-reduce, which then aborts rank 0 itself with its
    # error stack (seen in CI: the peer's memory could not be read, "errno 3", no such process)
    by_launcher = "BAD TERMINATION" in output and f"PID {pid} " in output \
        and "signal 9" in output
    rank0 = (tmp_path / "stderr.0").read_text()
    by_rank0 = "fastgan: error on rank 0 of 2: lost rank 1: a collective operation failed" \
        in rank0
    by_mpi = "(rank 0 in comm 0): Fatal error in internal_Allreduce" in output
    assert by_launcher or by_rank0 or by_mpi, output + rank0
    assert not (tmp_path / "status.0").exists()         # rank 0 was ended, not left waiting
    for line in (run / "metrics.jsonl").read_text().splitlines():
        json.loads(line)                                # every record whole
    saved = fastgan.load(run).steps
    assert saved % CHECKPOINT_EVERY == 0 and 2 * CHECKPOINT_EVERY <= saved <= reached

    result = train_ranks(tmp_path, "--resume", str(run), "--steps", str(saved + 40), *RESUMED)
    status, stderr = rank_records(tmp_path)
    assert result.returncode == 0 and status == ["0", "0"], result.stdout + "".join(stderr)
    assert fastgan.load(run).steps == saved + 40
    record("MPI rank SIGKILLed mid-training (mpiexec -n 2 fastgan train)", faults=1,
           survived=1, lost=reached - saved, detection_s=ended_in,
           note=f"mpiexec exited {process.returncode} {ended_in:.2f} s after the kill; "
                + "; ".join(said for said, seen in (
                    ("Hydra named the killed PID and signal 9", by_launcher),
                    ("rank 0 said it lost rank 1 in the all-reduce", by_rank0),
                    ("MPICH aborted rank 0 in the all-reduce with its error stack", by_mpi))
                    if seen) + "; "
                f"--resume on 2 ranks continued from the step-{saved} checkpoint; lost: the "
                f"steps since it (--checkpoint-every {CHECKPOINT_EVERY}; to the last 10-step "
                "log)")


# ---------------------------------------------------------------- the abort handshake
def test_a_failing_rank_waits_until_its_lines_are_read_from_the_pipe():
    read_fd, write_fd = os.pipe()
    with open(read_fd, "rb") as reader, open(write_fd, "w") as writer:
        writer.write("fastgan: error on rank 1 of 2: planted\n")
        taken: list[bytes] = []
        late = threading.Timer(0.3, lambda: taken.append(os.read(reader.fileno(), 1 << 16)))
        started = time.monotonic()
        late.start()
        try:
            assert wait_until_read([writer], timeout=30) is True
        finally:
            late.join()
        assert time.monotonic() - started >= 0.3           # it waited for the reader...
        assert taken == [b"fastgan: error on rank 1 of 2: planted\n"]   # ...which read it all


def test_the_wait_is_bounded_and_files_are_never_waited_for(tmp_path):
    read_fd, write_fd = os.pipe()
    with open(read_fd, "rb"), open(write_fd, "w") as unread:
        unread.write("no one reads this\n")
        started = time.monotonic()
        assert wait_until_read([unread], timeout=0.2) is False
        assert 0.2 <= time.monotonic() - started < 5
    with open(tmp_path / "stderr.txt", "w") as file:
        file.write("a file keeps what was written\n")
        assert wait_until_read([file, io.StringIO()], timeout=30) is True


def failing_rank_lines(runs: int, hogs: int = 2) -> int:
    """Launch ``distributed_worker.py fail-alone`` ``runs`` times with ``hogs`` busy loops
    running beside it; returns how many launches ended non-zero showing the failing rank's
    lines (:data:`FAILURE_LINES`)."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                             start_new_session=True) for _ in range(hogs)]
    try:
        shown = 0
        for _ in range(runs):
            result = launch_ranks(["distributed_worker.py", "fail-alone"], timeout=120)
            shown += result.returncode != 0 and all(line in result.stdout
                                                    for line in FAILURE_LINES)
        return shown
    finally:
        for hog in busy:
            hog.kill()
            hog.wait(timeout=30)


@needs_mpi
@pytest.mark.faults
def test_a_failing_rank_is_heard_on_a_loaded_machine():
    runs = 5
    started = time.monotonic()
    shown = failing_rank_lines(runs)
    assert shown == runs
    record("MPI rank failing alone, 2 CPU hogs beside (MPI_Abort after the handshake)",
           faults=runs, survived=shown, lost=runs - shown,
           detection_s=(time.monotonic() - started) / runs,
           note="every launch ended non-zero showing the failing rank's error and fastgan's "
                "line; detected: mean launch time, start to end")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Repeat the failing-rank launch under load.")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--hogs", type=int, default=2, help="busy loops beside (default 2)")
    options = parser.parse_args()
    print(f"{failing_rank_lines(options.runs, options.hogs)} of {options.runs} launches showed "
          f"the failing rank's lines, with {options.hogs} CPU hogs beside")
