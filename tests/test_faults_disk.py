"""Fault drill: the disk fills up while ``fastgan train`` writes its run folder.

A run is prepared (20 steps, its checkpoint at step 20), then resumed where there is no room
for one of the files it writes: the checkpoint, the metrics log, a sample picture or the loss
curves. The room runs out in two ways:

* a file-size limit (``RLIMIT_FSIZE``, ``ulimit -f``) in the child: every write past
  :data:`LIMIT` bytes fails with EFBIG. The limit is larger than config.json and a few metric
  lines, smaller than the checkpoint, a sample picture and the loss curves; each case arranges
  its run so that a different file is the first to reach it;
* a full disk (ENOSPC): a small tmpfs mounted in a user and mount namespace of the child's own
  (``unshare -rm``, so nothing is mounted on the machine; skipped where namespaces are not
  allowed), filled up to its last 16 kB: room for config.json and the metric lines, not for
  the checkpoint.

Each time: exit status 1 with one line, ``fastgan: error: no space left for <file>: ...``; the
checkpoint the run resumed from is intact (the same bytes); no temporary file is left and no
metric line is cut short; once there is room again, ``--resume`` continues from step 20 to
the end.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from support.drills import record
from support.limits import file_size_limit

from fastgan.cli.main import os_error_message
from fastgan.training import checkpoint

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
RUN = ("--preset", "tiny", "--data", "ring", "--g-hidden", "128", "--d-hidden", "128",
       "--batch-size", "32", "--backend", "numpy", "--threads", "1")
"""A run of 128 steps per epoch whose checkpoint (about 30 kB) is larger than LIMIT."""
PREPARED_STEPS = 20
LIMIT = 8_000
"""Bytes a file may hold: config.json (about 3 kB) fits, the checkpoint, a sample picture
and the loss curves (tens of kB) do not, nor about 30 metric lines."""
TIMEOUT = 120


@dataclass(frozen=True)
class Case:
    """A resumed run whose first write past the limit is ``file`` (in the run folder)."""

    file: str
    options: tuple[str, ...]


CASES = [
    Case("checkpoint.npz", ("--steps", "60", "--checkpoint-every", "5")),
    Case("metrics.jsonl", ("--steps", "100")),                        # a line per step
    Case("samples/epoch_0001.png", ("--steps", "200", "--log-every", "50")),  # at step 128
    Case("loss_curves.png", ("--steps", "30")),                       # drawn at the end
]


def fastgan(*args: str, cwd: Path, preexec=None) -> subprocess.CompletedProcess:
    """``python -m fastgan ARGS`` in ``cwd``, its output captured."""
    return subprocess.run([sys.executable, "-m", "fastgan", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=preexec)


def resumed(*options: str) -> tuple[str, ...]:
    """The arguments that resume ``run``, logging every step."""
    return ("train", "--resume", "run", "--log-every", "1", "--no-progress", *options)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder ``run`` trained PREPARED_STEPS steps, its checkpoint at the last one."""
    cwd = tmp_path_factory.mktemp("prepared")
    result = fastgan("train", *RUN, "--steps", str(PREPARED_STEPS), "--no-progress",
                     "--out", "run", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd / "run"


def a_copy(prepared: Path, into: Path) -> Path:
    """A copy of the prepared run as ``into/run``."""
    shutil.copytree(prepared, into / "run")
    return into / "run"


def metric_lines(run: Path) -> list[dict]:
    """Every line of the run's metrics log, each of which must be a whole JSON record."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def check_failed_and_kept(result: subprocess.CompletedProcess, run: Path, file: str,
                          reason: str, before: dict[str, bytes]) -> int:
    """The run stopped with one error line naming ``file`` and ``reason``, kept every file it
    had written before as it was (``before``: their bytes), left no temporary file and no
    metric line cut short; returns the steps it trained past its checkpoint (lost)."""
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert [line for line in lines if "error" in line] == [lines[-1]], result.stderr
    assert lines[-1] == f"fastgan: error: no space left for run/{file}: {reason}", lines[-1]
    assert "Traceback" not in result.stderr
    assert not list(run.rglob(".*.tmp"))
    for name, content in before.items():
        assert (run / name).read_bytes() == content, f"{name} changed"
    assert checkpoint.read_metadata(run)["progress"]["steps"] == PREPARED_STEPS
    trained = max(r["step"] for r in metric_lines(run))
    if file == "metrics.jsonl":
        trained += 1                      # the step whose line found no room was trained too
    return trained - PREPARED_STEPS


def check_resumes(run: Path, options: tuple[str, ...], file: str) -> None:
    """With room again, ``--resume`` goes on from the prepared step to the run's end, and
    ``file`` is written whole."""
    result = fastgan(*resumed(*options), cwd=run.parent)
    assert result.returncode == 0, result.stderr
    assert f"step {PREPARED_STEPS} -> " in result.stderr
    steps = int(options[options.index("--steps") + 1])
    assert checkpoint.read_metadata(run)["progress"]["steps"] == steps
    assert metric_lines(run)[-1] == {"event": "end", "outcome": "completed", "step": steps,
                                     "epoch": steps // 128}
    if file.endswith(".png"):
        with Image.open(run / file) as picture:
            picture.verify()


def kept_files(run: Path) -> dict[str, bytes]:
    """The bytes of the files a failed run must leave as they were."""
    return {name: (run / name).read_bytes()
            for name in ("checkpoint.npz", "loss_curves.png", "fixed_noise.npy")}


@pytest.mark.faults
def test_a_file_size_limit_stops_the_run_with_one_line_and_keeps_its_files(prepared, tmp_path):
    lost = {}
    for case in CASES:
        run = a_copy(prepared, tmp_path / Path(case.file).stem)
        before = kept_files(run)
        result = fastgan(*resumed(*case.options), cwd=run.parent, preexec=file_size_limit(LIMIT))
        lost[case.file] = check_failed_and_kept(
            result, run, case.file, "the file-size limit was reached (File too large)", before)
        check_resumes(run, case.options, case.file)
    record("`fastgan train` finds no room for a file (a file-size limit, EFBIG)",
           faults=len(CASES), survived=len(CASES), lost=sum(lost.values()),
           note="the checkpoint, the metrics log, a sample picture and the loss curves in "
                "turn: exit 1 with `no space left for <file>`, the checkpoint and every other "
                "file kept whole, no temporary file; `--resume` continues; lost: the steps "
                "since the checkpoint (" + ", ".join(f"{file} {steps}" for file, steps
                                                     in lost.items()) + ")")


@pytest.fixture(scope="module")
def namespaces(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skips unless this machine lets a process mount a tmpfs in namespaces of its own."""
    if shutil.which("unshare") is None:
        pytest.skip("no `unshare` command to mount a small tmpfs in a namespace")
    mount_point = tmp_path_factory.mktemp("probe")
    probe = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "tmpfs", str(mount_point)],
                           capture_output=True, text=True, timeout=TIMEOUT)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.strip()}")


FULL_DISK = """
set -e
mount -t tmpfs -o size=1m tmpfs full
cp -a run full/run
"$PYTHON" -c "$FILL" full
set +e
(cd full && "$PYTHON" -m fastgan "$@" 2> ../stderr)
echo $? > status
rm -r run && cp -a full/run run
"""
"""In namespaces of its own: a 1 MB tmpfs mounted on ``full``, the run copied in, the disk
filled up to its last 16 kB, ``fastgan ARGS`` run there; its status and stderr kept, its run
folder copied back (the tmpfs goes with the namespaces)."""

FILL = """
import os, sys
free = os.statvfs(sys.argv[1]).f_bavail * os.statvfs(sys.argv[1]).f_frsize
with open(os.path.join(sys.argv[1], "filler"), "wb") as file:
    file.write(bytes(free - 16384))
"""


@pytest.mark.faults
def test_a_full_disk_stops_the_run_with_one_line_and_keeps_its_checkpoint(
        prepared, tmp_path, namespaces):
    a_copy(prepared, tmp_path)
    (tmp_path / "full").mkdir()
    before = kept_files(tmp_path / "run")
    options = ("--steps", "30", "--checkpoint-every", "5")
    subprocess.run(["unshare", "-rm", "sh", "-c", FULL_DISK, "sh", *resumed(*options)],
                   cwd=tmp_path, env={**ENV, "PYTHON": sys.executable, "FILL": FILL},
                   check=True, timeout=TIMEOUT)
    result = subprocess.CompletedProcess(
        "fastgan", int((tmp_path / "status").read_text()),
        stderr=(tmp_path / "stderr").read_text())
    run = tmp_path / "run"
    lost = check_failed_and_kept(result, run, "checkpoint.npz",
                                 "the disk is full (No space left on device)", before)
    check_resumes(run, options, "checkpoint.npz")
    record("`fastgan train` on a full disk (ENOSPC, a full tmpfs)", faults=1, survived=1,
           lost=lost, note="the checkpoint found no room: exit 1 with `no space left for "
                           "run/checkpoint.npz: the disk is full`, the previous checkpoint "
                           "kept; `--resume` continues; lost: the steps since it")


@pytest.mark.parametrize(("code", "reason"), [
    (errno.ENOSPC, "the disk is full"), (errno.EDQUOT, "the disk quota is used up"),
    (errno.EFBIG, "the file-size limit was reached")])
def test_an_error_of_a_write_that_found_no_room_says_so_and_names_the_file(code, reason):
    error = OSError(code, os.strerror(code), "run/checkpoint.npz")
    assert os_error_message(error) == (f"no space left for run/checkpoint.npz: {reason} "
                                       f"({os.strerror(code)})")
    assert os_error_message(OSError(errno.EACCES, "Permission denied", "run")) == (
        "Permission denied: run")
