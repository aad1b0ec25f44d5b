"""Data-parallel training (fastgan.distributed): the parts that need no MPI, then the real thing
under ``mpiexec -n 2`` in a subprocess.

Every launch has a timeout and runs in its own session, so that a hang fails the test (and the
launcher and its ranks are ended) instead of holding CI. The launched tests skip, saying why,
where mpi4py or mpiexec is missing (``pip install -e ".[mpi]"`` brings both).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from support import cuda_emulator, drills

import fastgan
from fastgan.backends import cupy_backend
from fastgan.distributed import devices, launch
from fastgan.errors import ConfigError
from fastgan.training.loop import Shard

SUPPORT = Path(__file__).parent / "support"
LAUNCH_TIMEOUT = 240     # seconds for one mpiexec run (a busy 2-core machine runs 2 ranks)


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"    # the environment's (fastgan[mpi])
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason="needs mpi4py and mpiexec: pip install -e '.[mpi]'")


def launch_ranks(arguments: list[str], *, ranks: int = 2, cwd: Path = SUPPORT,
                 timeout: float = LAUNCH_TIMEOUT) -> subprocess.CompletedProcess:
    """``mpiexec -n ranks python ARGUMENTS`` (ARGUMENTS may hold ``:``-separated parts of an
    MPMD launch); fails the test, ending the launch, if it outlives ``timeout``."""
    command = [MPIEXEC, "-n", str(ranks), sys.executable, *arguments]
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            end_session(process)
            pytest.fail(f"mpiexec {' '.join(arguments)} did not end within {timeout} s")
    return subprocess.CompletedProcess(command, process.returncode, output, "")


def end_session(process: subprocess.Popen) -> None:
    """Stop a launch: SIGTERM to mpiexec (it ends its ranks), then SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=10)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


# ---------------------------------------------------------------- without MPI
def test_import_fastgan_and_distributed_never_import_mpi4py():
    code = ("import sys, fastgan, fastgan.distributed as d; "
            "print('mpi4py' in sys.modules, d.rank(), d.world_size())")
    environment = {k: v for k, v in os.environ.items() if k not in launch.SIZE_VARIABLES
                   and k not in launch.RANK_VARIABLES}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=environment, timeout=120, check=True)
    assert result.stdout.split() == ["False", "0", "1"]


@pytest.mark.parametrize("environ, expected", [
    ({}, None),
    ({"PMI_SIZE": "4", "PMI_RANK": "2"}, launch.Launch(2, 4, "PMI_SIZE")),
    ({"OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_RANK": "0"},
     launch.Launch(0, 3, "OMPI_COMM_WORLD_SIZE")),
    ({"PMIX_RANK": "1"}, launch.Launch(1, None, "PMIX_RANK")),
    ({"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5"},
     launch.Launch(5, 8, "SLURM_STEP_NUM_TASKS")),
    ({"SLURM_NTASKS": "8"}, None),          # a batch script, not one of srun's tasks
])
def test_the_launcher_is_read_from_the_environment(environ, expected):
    assert launch.detect(environ) == expected
    assert launch.is_parallel(environ) == (expected is not None and expected.size != 1)


def test_shards_are_contiguous_shares_of_every_batch():
    order = np.arange(24)                     # 3 batches of 8
    assert Shard(0, 2).rows(order, 8).tolist() == [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19]
    assert Shard(1, 2).rows(order, 8).tolist() == [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23]
    assert Shard().rows(order, 8) is order
    with pytest.raises(ConfigError, match="share"):
        Shard(2, 2)


def test_a_missing_mpi4py_is_an_error_naming_the_extra(tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None; from fastgan.cli.main import main; "
            f"sys.exit(main(['train', '--out', {str(tmp_path / 'run')!r}]))")
    for rank, printed in (("0", True), ("1", False)):
        environment = {**os.environ, "PMI_SIZE": "2", "PMI_RANK": rank}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=environment, timeout=120)
        assert result.returncode == 1
        assert ("fastgan[mpi]" in result.stderr) == printed, result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("local_rank, local_size, visible, device", [
    (0, 2, 2, 0), (1, 2, 2, 1), (1, 2, 4, 1),      # every process sees every GPU
    (1, 2, 1, 0),                                   # the launcher gave each process its own
])
def test_each_local_rank_drives_its_own_gpu(local_rank, local_size, visible, device):
    assert devices.device_for(local_rank, local_size, visible) == device


def test_fewer_gpus_than_processes_is_an_error():
    with pytest.raises(ConfigError, match="start at most 2 processes per machine"):
        devices.device_for(2, 3, 2)
    with pytest.raises(ConfigError, match="no GPU is visible"):
        devices.device_for(0, 1, 0)
    devices.check_distinct(["0000:01:00.0", "0000:02:00.0"], "node1")
    with pytest.raises(ConfigError, match="processes 0 and 1 on node1 would share the GPU"):
        devices.check_distinct(["0000:01:00.0", "0000:01:00.0"], "node1")


class OneMoreRank:
    """An MPI communicator of size 2 seen from rank 0, the other rank contributing ``other``
    to every sum (a stand-in for testing the staging around the all-reduce)."""

    size, rank = 2, 0

    def __init__(self, other: np.ndarray) -> None:
        self.other = other

    def Allreduce(self, send, buffer, op) -> None:    # mpi4py's name and arguments
        buffer += self.other


CUPY_REASON = cupy_backend.unavailable_reason()
needs_cuda = pytest.mark.skipif(CUPY_REASON is not None, reason=f"cupy unavailable: {CUPY_REASON}")


@pytest.fixture(params=["emulated", pytest.param("cuda", marks=[pytest.mark.gpu, needs_cuda])])
def gpu(request: pytest.FixtureRequest) -> cupy_backend.CupyBackend:
    """The cupy backend on the CPU emulation of its CUDA source, and on a real GPU."""
    if request.param == "cuda":
        return cupy_backend.CupyBackend()
    if not cuda_emulator.compiler_available():
        pytest.skip("g++ is not available to build the CPU emulation of the CUDA kernels")
    return cupy_backend.CupyBackend(device=cuda_emulator.EmulatedDevice(cuda_emulator.build()))


@pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None,
                    reason="needs mpi4py: pip install -e '.[mpi]'")
def test_gradients_without_nccl_are_averaged_through_host_memory(gpu):
    from fastgan.distributed.allreduce import StagedAllreduce

    rng = np.random.default_rng(0)
    mine, other = rng.standard_normal(1000), rng.standard_normal(1000)
    buffer = gpu.asarray(mine)
    allreduce = StagedAllreduce(OneMoreRank(other), gpu)
    allreduce.mean(buffer)
    assert gpu.device.is_device_array(buffer)
    np.testing.assert_allclose(gpu.to_numpy(buffer), (mine + other) / 2, rtol=1e-15)
    staging = allreduce._staging[(1000, buffer.dtype.str)]
    allreduce.mean(buffer)                         # the host buffer is made once, then reused
    assert allreduce._staging[(1000, buffer.dtype.str)] is staging


@needs_mpi
@pytest.mark.gpu
@needs_cuda
def test_one_rank_on_a_gpu_trains_as_one_process():
    """DataParallel on one GPU, through NCCL where CuPy has it (else staged through host
    memory): the mean over one rank leaves every step as ``GAN.fit`` takes it, bit for bit."""
    from mpi4py import MPI
    from support.distributed_worker import Trace, build

    from fastgan.distributed import DataParallel
    from fastgan.distributed.allreduce import NcclAllreduce, StagedAllreduce

    assert devices.use_local_gpu(MPI.COMM_SELF) == 0
    data = fastgan.data.ring(n=2048, seed=4)
    single, parallel = Trace(), Trace()
    build("adam", 2, 32, dropout=0.3, backend="cupy").fit(data, steps=20, callbacks=[single])
    dp = DataParallel(build("adam", 2, 32, dropout=0.3, backend="cupy"), MPI.COMM_SELF)
    nccl = devices.nccl_communicator(MPI.COMM_SELF) is not None
    assert type(dp.allreduce) is (NcclAllreduce if nccl else StagedAllreduce)
    dp.fit(data, steps=20, callbacks=[parallel], log_every=5)
    assert len(parallel.params) == 20
    for expected, found in zip(single.params, parallel.params, strict=True):
        np.testing.assert_array_equal(found, expected)


@pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None,
                    reason="needs mpi4py: pip install -e '.[mpi]'")
def test_too_few_gpus_stops_every_rank_before_cupy_is_used(monkeypatch):
    from mpi4py import MPI

    used: list[int] = []
    runtime = SimpleNamespace(getDeviceCount=lambda: 0, deviceGetPCIBusId=lambda i: f"bus{i}")
    fake_cupy = SimpleNamespace(cuda=SimpleNamespace(
        runtime=runtime, Device=lambda i: SimpleNamespace(use=lambda: used.append(i))))
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    with pytest.raises(ConfigError, match="no GPU is visible"):
        devices.use_local_gpu(MPI.COMM_SELF)
    runtime.getDeviceCount = lambda: 2
    assert devices.use_local_gpu(MPI.COMM_SELF) == 0
    assert used == [0]


# ---------------------------------------------------------------- two ranks
@needs_mpi
@pytest.mark.parametrize("optimizer, k", [("sgd", 1), ("adam", 2)])
def test_two_ranks_take_the_steps_of_one_process_at_the_global_batch(optimizer, k):
    result = launch_ranks(["distributed_worker.py", "equivalence", optimizer, str(k)])
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("worst difference over 20 steps") == 2


@needs_mpi
def test_two_ranks_of_a_conditional_gan_take_the_steps_of_one_process():
    """Labelled rows cut into shares like any batch; fake classes from the shared noise."""
    result = launch_ranks(["distributed_worker.py", "equivalence", "adam", "1",
                           "--conditional"])
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("worst difference over 20 steps") == 2


@needs_mpi
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_equivalence_check_catches_a_sum_in_place_of_the_mean(optimizer):
    result = launch_ranks(["distributed_worker.py", "equivalence", optimizer, "1", "--plant"])
    assert result.returncode != 0, result.stdout
    worst = [float(line.rsplit(" ", 1)[1]) for line in result.stdout.splitlines()
             if "worst difference" in line]
    assert worst and min(worst) > 1e-10


@needs_mpi
def test_replicas_stay_identical_with_dropout_and_noise_of_their_own():
    result = launch_ranks(["distributed_worker.py", "replicas"])
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("replicas identical True, noise distinct True") == 2


@needs_mpi
@pytest.mark.parametrize("planted", [False, True])
def test_resuming_on_as_many_ranks_continues_bit_for_bit(tmp_path, planted):
    result = launch_ranks(["distributed_worker.py", "resume", str(tmp_path / "c.npz"),
                           *(["--plant"] if planted else [])])
    assert (result.returncode == 0) != planted, result.stdout
    assert result.stdout.count(f"resumed run bit for bit {not planted}") == 2


@needs_mpi
def test_a_rank_that_fails_alone_ends_every_rank():
    started = time.monotonic()
    result = launch_ranks(["distributed_worker.py", "fail-alone"], timeout=120)
    assert result.returncode != 0
    assert "planted failure on rank 1" in result.stdout
    assert "error on rank 1 of 2" in result.stdout
    assert "trained on although" not in result.stdout
    assert time.monotonic() - started < 120


@needs_mpi
def test_a_nan_on_one_rank_stops_every_rank_at_the_same_step():
    result = launch_ranks(["distributed_worker.py", "nan-alone"])
    assert result.returncode == 3, result.stdout
    stops = dict(re.findall(r"rank (\d): diverged, stopped at step (\d+)", result.stdout))
    assert set(stops) == {"0", "1"} and stops["0"] == stops["1"], result.stdout   # one step
    assert "trained on" not in result.stdout


@needs_mpi
def test_resuming_on_another_number_of_ranks_warns_and_trains(tmp_path):
    from mpi4py import MPI
    from support.distributed_worker import LOCAL_BATCH, build

    from fastgan.distributed import DataParallel

    saved = tmp_path / "c.npz"
    result = launch_ranks(["distributed_worker.py", "resume", str(saved)])    # 2 ranks wrote it
    assert result.returncode == 0, result.stdout
    one = DataParallel(build("adam", 1, 2 * LOCAL_BATCH, dropout=0.3), MPI.COMM_SELF)
    with pytest.warns(UserWarning, match="written by 2 process.* continues on 1"):
        one.restore(saved)
    assert one.gan.steps == 10
    one.fit(fastgan.data.ring(n=2048, seed=4), steps=5, log_every=5)
    assert one.gan.steps == 15


# ---------------------------------------------------------------- fastgan train, two ranks
def train_ranks(folder: Path, *arguments: str, parts: list[list[str]] | None = None,
                ) -> subprocess.CompletedProcess:
    """``mpiexec -n 2 fastgan train ...`` with every rank's stderr and status kept in
    ``folder`` (``parts``: one argument list per rank, an MPMD launch)."""
    folder.mkdir(exist_ok=True)
    runner = [str(SUPPORT / "distributed_cli.py"), str(folder), "train"]
    if parts is None:
        return launch_ranks([*runner, *arguments], cwd=folder)
    mpmd = [*runner, *parts[0], ":", "-n", "1", sys.executable, *runner, *parts[1]]
    return launch_ranks(mpmd, ranks=1, cwd=folder)


def rank_records(folder: Path) -> tuple[list[str], list[str]]:
    """Each rank's exit status and standard error, rank 0 first."""
    status = [(folder / f"status.{rank}").read_text() for rank in range(2)]
    stderr = [(folder / f"stderr.{rank}").read_text() for rank in range(2)]
    return status, stderr


RESUMED = ("--threads", "1", "--no-progress", "--log-every", "10")
QUICK = ("--backend", "numpy", *RESUMED)


@needs_mpi
def test_train_resume_on_two_ranks(tmp_path):
    run = tmp_path / "run"
    result = train_ranks(tmp_path, "--steps", "40", "--checkpoint-every", "20",
                         "--out", str(run), *QUICK)
    status, stderr = rank_records(tmp_path)
    assert result.returncode == 0 and status == ["0", "0"], result.stdout + "".join(stderr)
    assert "on 2 processes (batch 128 = 2 x 64)" in stderr[0]
    assert stderr[1] == ""                                   # the other rank prints nothing
    config = json.loads((run / "config.json").read_text())
    assert config["processes"] == {"world_size": 2, "global_batch": 128,
                                   "batch_per_process": 64}
    assert fastgan.load(run).steps == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "run", "status.0", "status.1", "stderr.0", "stderr.1"]   # one run folder

    result = train_ranks(tmp_path, "--resume", str(run), "--steps", "60", *RESUMED)
    status, stderr = rank_records(tmp_path)
    assert result.returncode == 0 and status == ["0", "0"], result.stdout + "".join(stderr)
    assert "warning" not in stderr[0]                        # same number of ranks
    assert fastgan.load(run).steps == 60


@needs_mpi
@pytest.mark.faults
@pytest.mark.parametrize("child_dispositions", [signal.SIG_IGN], ids=["sigint-ignored"],
                         indirect=True)
@pytest.mark.parametrize(("to_group", "signum", "status", "name"), [
    (True, signal.SIGINT, 130, "Ctrl-C"),          # a terminal's Ctrl-C: every process
    (False, signal.SIGTERM, 143, "SIGTERM"),       # a batch system's preemption: the launcher
], ids=["ctrl-c", "sigterm"])
def test_a_stop_signal_stops_every_rank_at_one_step_and_saves(tmp_path, to_group, signum,
                                                               status, name,
                                                               child_dispositions):
    run = tmp_path / "run"
    runner = [str(SUPPORT / "distributed_cli.py"), str(tmp_path), "train"]
    command = [MPIEXEC, "-n", "2", sys.executable, *runner, "--steps", "1000000",
               "--out", str(run), *QUICK]
    with subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True,
                          preexec_fn=child_dispositions) as process:
        try:
            deadline = time.monotonic() + LAUNCH_TIMEOUT
            metrics = run / "metrics.jsonl"
            while not (metrics.exists() and '"log"' in metrics.read_text()):
                assert process.poll() is None and time.monotonic() < deadline, \
                    "training did not start"
                time.sleep(0.2)
            sent = time.monotonic()
            if to_group:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)
            output, _ = process.communicate(timeout=LAUNCH_TIMEOUT)
            stopped_within = time.monotonic() - sent
        finally:
            if process.poll() is None:
                end_session(process)
    statuses, stderr = rank_records(tmp_path)
    assert process.returncode == status and statuses == [str(status)] * 2, \
        output + "".join(stderr)
    assert f"stopped by {name}; checkpoint at step" in stderr[0]
    end = json.loads(metrics.read_text().splitlines()[-1])
    assert end["event"] == "end" and end["outcome"] == "stopped"
    assert fastgan.load(run).steps == end["step"]
    drills.record("`mpiexec -n 2 fastgan train`: Ctrl-C to every process, or SIGTERM to the "
                  "launcher", faults=1, survived=1, lost=0, detection_s=stopped_within,
                  note="every rank stops at one step; rank 0 saves it; exit 130/143")


@needs_mpi
def test_a_batch_the_ranks_cannot_share_is_one_error_and_no_folder(tmp_path):
    run = tmp_path / "run"
    result = train_ranks(tmp_path, "--batch-size", "33", "--steps", "5", "--out", str(run),
                         *QUICK)
    status, stderr = rank_records(tmp_path)
    assert result.returncode == 1 and status == ["1", "1"]
    assert stderr[0].count("fastgan: error: the batch size 33 cannot be shared by 2") == 1
    assert stderr[1] == ""
    assert not run.exists()


@pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None,
                    reason="needs mpi4py: pip install -e '.[mpi]'")
def test_a_graphed_step_without_nccl_is_an_error():
    from mpi4py import MPI
    from support.distributed_worker import build

    from fastgan.distributed import DataParallel

    with pytest.raises(ConfigError, match="needs gradients all-reduced by NCCL"):
        DataParallel(build("adam", 1, 16), MPI.COMM_SELF, graph=True)


@needs_mpi
@pytest.mark.gpu
@needs_cuda
def test_the_nccl_allreduce_is_replayed_inside_the_cuda_graph():
    """One rank, with the mean taken over "2 ranks" (every gradient halved, so that the
    all-reduce shows in the result): 20 steps replayed as graphs equal 20 eager steps."""
    from mpi4py import MPI
    from support.distributed_worker import Trace, build

    from fastgan.distributed import DataParallel
    from fastgan.distributed.allreduce import NcclAllreduce

    devices.use_local_gpu(MPI.COMM_SELF)
    communicator = devices.nccl_communicator(MPI.COMM_SELF)
    if communicator is None:
        pytest.skip("this CuPy has no NCCL")
    data = fastgan.data.ring(n=2048, seed=4)

    def trained(graph: bool) -> tuple[DataParallel, Trace]:
        trace = Trace()
        dp = DataParallel(build("adam", 2, 32, dropout=0.3, backend="cupy"), MPI.COMM_SELF,
                          graph=graph, allreduce=NcclAllreduce(communicator, 2))
        dp.fit(data, steps=20, callbacks=[trace], log_every=5)
        return dp, trace

    (graphed, replayed), (_, eager) = trained(True), trained(False)
    assert len(graphed.inner._graphs) == 1                    # one batch shape, one graph
    for expected, found in zip(eager.params, replayed.params, strict=True):
        np.testing.assert_array_equal(found, expected)
    plain = Trace()
    build("adam", 2, 32, dropout=0.3, backend="cupy").fit(data, steps=20, callbacks=[plain])
    assert not np.array_equal(plain.params[-1], replayed.params[-1])


@needs_mpi
@pytest.mark.gpu
@needs_cuda
def test_two_ranks_on_one_gpu_are_one_error_and_no_folder(tmp_path):
    import cupy

    if cupy.cuda.runtime.getDeviceCount() != 1:
        pytest.skip("needs a machine with exactly one GPU")
    run = tmp_path / "run"
    result = train_ranks(tmp_path, "--backend", "cupy", "--steps", "5", "--out", str(run),
                         *RESUMED)
    status, stderr = rank_records(tmp_path)
    assert result.returncode == 1 and status == ["1", "1"], result.stdout + "".join(stderr)
    assert "processes 0 and 1 on" in stderr[0] and "would share the GPU" in stderr[0]
    assert stderr[1] == ""
    assert not run.exists()


@needs_mpi
def test_ranks_that_disagree_on_the_preset_stop_before_writing(tmp_path):
    run = tmp_path / "run"
    common = ["--steps", "5", "--out", str(run), *QUICK]
    result = train_ranks(tmp_path, parts=[["--preset", "tiny", *common],
                                          ["--preset", "keras-mlp", *common]])
    status, stderr = rank_records(tmp_path)
    assert result.returncode == 1 and status == ["1", "1"], result.stdout + "".join(stderr)
    assert "the ranks disagree on the run's configuration" in stderr[0]
    assert "rank(s) 1 differ" in stderr[0]
    assert stderr[1] == ""
    assert not run.exists()
