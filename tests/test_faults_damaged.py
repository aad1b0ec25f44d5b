"""Fault drill: damaged files. A run's checkpoint.npz, config.json and metrics.jsonl and a
sweep's sweep.json and results.jsonl, truncated, garbled or holding valid JSON of the wrong
shape, met by the command a user runs next (``fastgan train --resume RUN``, ``fastgan sample
RUN``, the same ``fastgan sweep`` command): each is refused with exit status 1 and one
``fastgan: error:`` line naming the file, never a traceback, and the damaged file is left as
it was. (``fastgan evaluate`` reads a checkpoint through the same ``fastgan.load`` as
``sample``; it needs a trained evaluation classifier, so it is not run here.)

Where the damage leaves a file meaningful (a garbled byte inside a string, a value replaced by
another valid one) the command may also carry on. The logs are written a line at a time, so a
crash can leave a torn line: a line that is not a JSON object is skipped, the command carries
on, keeps every whole line and writes its own on lines of their own.

The commands run in this process (``fastgan.cli.main.main``), quick enough for ``hypothesis``
to try many damages; two run as a user runs them, in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.drills import record

from fastgan.cli import main as cli

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
TRAIN = ["train", "--preset", "tiny", "--data", "ring", "--backend", "numpy", "--no-progress"]
SWEEP = ["sweep", "--preset", "tiny", "--data", "ring", "--backend", "numpy", "--no-progress",
         "--grid", "lr=1e-3,2e-3", "--budget", "6", "--workers", "1", "--out", "s"]
RESUME = ["train", "--resume", "run", "--no-progress"]
SAMPLE = ["sample", "run", "-n", "8", "-o", "samples.npy"]
COMMANDS: dict[str, list[list[str]]] = {
    "run/checkpoint.npz": [RESUME, SAMPLE],
    "run/config.json": [RESUME],
    "run/metrics.jsonl": [[*RESUME, "--steps", "25"]],
    "s/sweep.json": [SWEEP],
    "s/results.jsonl": [SWEEP],
}
"""The commands a user runs next on each file."""

DRILL = ("damaged files: checkpoint.npz, config.json, metrics.jsonl, sweep.json, results.jsonl "
         "truncated, garbled or of the wrong shape")
NOTE = ("exit 1 with one `fastgan: error:` line naming the file, left unchanged (or, where the "
        "damage left it meaningful, the command carries on); torn or garbled log lines skipped")
FEW = settings(max_examples=30, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


# ---------------------------------------------------------------- the folders and the checks
@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A run trained 20 steps (``run``) and a finished sweep of two trials (``s``)."""
    home = tmp_path_factory.mktemp("pristine")
    cwd = Path.cwd()
    os.chdir(home)
    try:
        assert cli.main([*TRAIN, "--steps", "20", "--log-every", "5", "--out", "run"]) == 0
        assert cli.main(SWEEP) == 0
    finally:
        os.chdir(cwd)
    return home


@contextmanager
def copy_of(pristine: Path) -> Iterator[Path]:
    """A fresh copy of the pristine folders, as the working directory of the commands (a
    temporary folder of its own: ``hypothesis`` calls a test many times with one tmp_path)."""
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        for name in ("run", "s"):
            shutil.copytree(pristine / name, home / name)
        cwd = Path.cwd()
        os.chdir(home)
        try:
            yield home
        finally:
            os.chdir(cwd)


def meet(capsys, damaged: Path, argv: list[str], *, may_pass: bool = False) -> str:
    """Run ``argv`` on the ``damaged`` file: it must stop with status 1 and one error line that
    names the file (a changed sweep.json: that it holds another sweep) and leave the file as it
    was; where ``may_pass`` it may instead succeed. Returns the error line ("" for none)."""
    before = damaged.read_bytes()
    capsys.readouterr()
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if status == 0 and may_pass:
        return ""
    assert status == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastgan: error: "), lines
    named = damaged.relative_to(damaged.parents[1])
    assert str(named) in lines[0] or f" {named.parent} holds a different sweep" in lines[0], \
        lines[0]
    assert damaged.read_bytes() == before
    return lines[0]


def damage(path: Path, change: Callable[[bytes], bytes]) -> None:
    path.write_bytes(change(path.read_bytes()))


def edit_json(path: Path, change: Callable[[Any], Any]) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def edit_metadata(path: Path, change: Callable[[Any], Any]) -> None:
    """Rewrite checkpoint ``path`` with ``change`` made to its metadata."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    metadata = change(json.loads(arrays["metadata.json"].tobytes()))
    arrays["metadata.json"] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def edit_record(path: Path, line: int, change: Callable[[Any], Any]) -> None:
    """Make ``change`` to the record on line ``line`` of the JSON-lines file at ``path``."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines[line] = json.dumps(change(json.loads(lines[line]))).encode() + b"\n"
    path.write_bytes(b"".join(lines))


def setting(*keys: Any, to: Any = None, drop: bool = False) -> Callable[[Any], Any]:
    """A change of a JSON document: the value at ``keys`` set ``to`` another, or dropped."""
    def change(document: Any) -> Any:
        inner = document
        for key in keys[:-1]:
            inner = inner[key]
        if drop:
            del inner[keys[-1]]
        else:
            inner[keys[-1]] = to
        return document
    return change


def whole(to: Any) -> Callable[[Any], Any]:
    """The change of a JSON document into ``to``."""
    return lambda document: to


def key_paths(document: Any, depth: int = 2) -> list[tuple[str, ...]]:
    """The keys of ``document``'s objects as paths, down to ``depth`` levels."""
    if depth == 0 or not isinstance(document, dict):
        return []
    return [path for key, value in document.items()
            for path in [(key,), *((key, *inner) for inner in key_paths(value, depth - 1))]]


def drawn_command(data: st.DataObject) -> tuple[str, list[str]]:
    """A file of :data:`COMMANDS` and a command that reads it, drawn by ``hypothesis``."""
    name = data.draw(st.sampled_from(list(COMMANDS)))
    return name, data.draw(st.sampled_from(COMMANDS[name]))


# ---------------------------------------------------------------- truncated, garbled
@pytest.mark.parametrize("name", ["run/checkpoint.npz", "run/config.json", "s/sweep.json"])
@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, -2],
                         ids=["empty", "10%", "50%", "90%", "all-but-2-bytes"])
def test_a_truncated_file_is_refused(pristine, capsys, name, keep):
    for argv in COMMANDS[name]:
        with copy_of(pristine) as home:
            damage(home / name, lambda data: data[:int(len(data) * keep) if keep >= 0 else keep])
            meet(capsys, home / name, argv)
    record(DRILL, faults=len(COMMANDS[name]), survived=len(COMMANDS[name]), note=NOTE)


@FEW
@given(data=st.data())
def test_garbled_bytes_are_refused_or_harmless(pristine, capsys, data):
    name, argv = drawn_command(data)
    with copy_of(pristine) as home:
        path = home / name
        size = path.stat().st_size
        spots = data.draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 255)),
                                   min_size=1, max_size=4))

        def garble(content: bytes) -> bytes:
            changed = bytearray(content)
            for spot, flip in spots:
                changed[spot] ^= flip
            return bytes(changed)

        damage(path, garble)
        meet(capsys, path, argv, may_pass=True)
    record(DRILL, faults=1, survived=1, note=NOTE)


@pytest.mark.parametrize(("old", "new"), [(b"(", b")"), (b"'shape': (", b"'shape': '"),
                                          (b"'shape': (", b"'shape': (99999999999999")],
                         ids=["unbalanced", "unterminated", "huge"])
def test_a_garbled_array_header_is_refused(pristine, capsys, old, new):
    """numpy reads an array's header as a Python literal: garbled, it is a SyntaxError or a
    tokenize error, or an array too large to make."""
    with copy_of(pristine) as home:
        path = home / "run/checkpoint.npz"
        data = path.read_bytes()
        at = data.index(b"{'descr'")
        damage(path, lambda data: data[:at] + data[at:].replace(old, new, 1))
        for argv in COMMANDS["run/checkpoint.npz"]:
            meet(capsys, path, argv)
    record(DRILL, faults=2, survived=2, note=NOTE)


# ---------------------------------------------------------------- valid JSON, wrong shape
WRONG_CONFIG = {
    "a list": whole([]),
    "config a list": setting("config", to=[]),
    "steps a string": setting("config", "steps", to="20"),
    "seed a float": setting("config", "seed", to=0.5),
    "hidden a string": setting("config", "g_hidden", to="abc"),
    "preset a number": setting("config", "preset", to=7),
    "unknown preset": setting("config", "preset", to="tiny2"),
    "backend a number": setting("backend", to=5),
    "backend unknown": setting("backend", to="numpz"),
    "sha256 a number": setting("data", "sha256", to=5),
    "data missing": setting("data", drop=True),
    "config.data missing": setting("config", "data", drop=True),
}
WRONG_METADATA = {       # the change, and the commands that read what it damaged
    "a list": (whole([]), [RESUME, SAMPLE]),
    "model a list": (setting("model", to=[]), [RESUME, SAMPLE]),
    "progress a string": (setting("progress", to="x"), [RESUME, SAMPLE]),
    "steps not a number": (setting("progress", "steps", to="twenty"), [RESUME, SAMPLE]),
    "rng a number": (setting("rng", to=5), [RESUME, SAMPLE]),
    "noise stream a list": (setting("rng", "noise", to=[1, 2]), [RESUME, SAMPLE]),
    "progress missing": (setting("progress", drop=True), [RESUME, SAMPLE]),
    "latent_dim a string": (setting("model", "latent_dim", to="8"), [RESUME, SAMPLE]),
    "generator a dict": (setting("model", "generator", to={}), [RESUME, SAMPLE]),
    "extra a list": (setting("extra", to=[]), [RESUME, SAMPLE]),
    "backend a number": (setting("backend", to=5), [RESUME, SAMPLE]),
    "backend unknown": (setting("backend", to="numpz"), [SAMPLE]),
    "dtype unknown": (setting("dtype", to="float13"), [SAMPLE]),
    "image shape a string": (setting("extra", "image_shape", to="ab"),
                             [["sample", "run", "-o", "samples.png"]]),
}
"""(``train --resume`` takes its backend and dtype from config.json, and only a picture of
samples reads the image shape.)"""
WRONG_RECORDS = {        # the file, the line changed, the change
    "metrics step a string": ("run/metrics.jsonl", 1, setting("step", to="5")),
    "metrics step missing": ("run/metrics.jsonl", -1, setting("step", drop=True)),
    "metrics loss missing": ("run/metrics.jsonl", 0, setting("d_loss", drop=True)),
    "metrics loss a bool": ("run/metrics.jsonl", 0, setting("g_loss", to=True)),
    "results rung a string": ("s/results.jsonl", 0, setting("rung", to="0")),
    "results trial a number": ("s/results.jsonl", 0, setting("trial", to=0)),
    "results seconds missing": ("s/results.jsonl", 0, setting("seconds", drop=True)),
    "results wall time a string": ("s/results.jsonl", -1, setting("wall_seconds", to="1 s")),
}


@pytest.mark.parametrize("change", WRONG_CONFIG.values(), ids=WRONG_CONFIG.keys())
def test_config_json_of_the_wrong_shape_is_refused(pristine, capsys, change):
    with copy_of(pristine) as home:
        edit_json(home / "run/config.json", change)
        meet(capsys, home / "run/config.json", RESUME)
    record(DRILL, faults=1, survived=1, note=NOTE)


@pytest.mark.parametrize(("change", "readers"), WRONG_METADATA.values(),
                         ids=WRONG_METADATA.keys())
def test_checkpoint_metadata_of_the_wrong_shape_is_refused(pristine, capsys, change, readers):
    for argv in readers:
        with copy_of(pristine) as home:
            edit_metadata(home / "run/checkpoint.npz", change)
            meet(capsys, home / "run/checkpoint.npz", argv)
    record(DRILL, faults=len(readers), survived=len(readers), note=NOTE)


@pytest.mark.parametrize(("name", "line", "change"), WRONG_RECORDS.values(),
                         ids=WRONG_RECORDS.keys())
def test_a_record_of_the_wrong_shape_is_refused(pristine, capsys, name, line, change):
    with copy_of(pristine) as home:
        edit_record(home / name, line, change)
        number = line + 1 if line >= 0 else len((home / name).read_bytes().splitlines())
        message = meet(capsys, home / name, COMMANDS[name][0])
        assert f"{name}, line {number} is damaged" in message
    record(DRILL, faults=1, survived=1, note=NOTE)


@FEW
@given(data=st.data())
def test_random_json_values_are_refused_or_harmless(pristine, capsys, data):
    name, argv = drawn_command(data)
    with copy_of(pristine) as home:
        path = home / name
        if name.endswith(".jsonl"):
            line = data.draw(st.integers(0, len(path.read_bytes().splitlines()) - 1))
            document = json.loads(path.read_bytes().splitlines()[line])
        elif name.endswith(".npz"):
            with np.load(path) as npz:
                document = json.loads(npz["metadata.json"].tobytes())
        else:
            document = json.loads(path.read_text())
        keys = data.draw(st.sampled_from(key_paths(document)))
        change = (setting(*keys, drop=True) if data.draw(st.booleans())
                  else setting(*keys, to=data.draw(JSON)))
        if name.endswith(".jsonl"):
            edit_record(path, line, change)
        else:
            (edit_metadata if name.endswith(".npz") else edit_json)(path, change)
        meet(capsys, path, argv, may_pass=True)
    record(DRILL, faults=1, survived=1, note=NOTE)


# ---------------------------------------------------------------- a crash's torn log line
@pytest.mark.parametrize("name", ["run/metrics.jsonl", "s/results.jsonl"])
@pytest.mark.parametrize("damage_of", [
    lambda data: data[:-7],
    lambda data: data.replace(b"\n", b"\n\xff\xfe garbled\n", 1),
    lambda data: data.replace(b"\n", b"\n[1, 2]\n", 1),
], ids=["torn-last-line", "garbled-line", "not-an-object"])
def test_a_line_that_is_no_record_is_skipped_and_the_log_goes_on(pristine, capsys, name,
                                                                 damage_of):
    with copy_of(pristine) as home:
        path = home / name
        damage(path, damage_of)
        before = path.read_bytes()
        capsys.readouterr()
        assert cli.main(COMMANDS[name][0]) == 0
        assert "Traceback" not in capsys.readouterr().err
        after = path.read_bytes()
        assert after.startswith(before)                 # every line kept, the damaged one too
        added = [json.loads(line) for line in after[len(before):].splitlines() if line]
        assert added and all(isinstance(r, dict) for r in added)
    record(DRILL, faults=1, survived=1, note=NOTE)


# ---------------------------------------------------------------- as a user runs them
@pytest.mark.parametrize(("name", "argv"), [("run/checkpoint.npz", RESUME),
                                            ("s/results.jsonl", SWEEP)])
def test_a_damaged_file_met_by_the_real_command(pristine, tmp_path, name, argv):
    for folder in ("run", "s"):
        shutil.copytree(pristine / folder, tmp_path / folder)
    path = tmp_path / name
    if name.endswith(".npz"):
        damage(path, lambda data: data[:len(data) // 2])
    else:
        edit_record(path, 0, setting("status", to=["completed"]))
    before = path.read_bytes()
    result = subprocess.run([sys.executable, "-m", "fastgan", *argv], cwd=tmp_path, env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fastgan: error: {name}"), lines
    assert path.read_bytes() == before
    record(DRILL, faults=1, survived=1, note=NOTE)
