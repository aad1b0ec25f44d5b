"""One rank of ``fastgan`` under an MPI launcher, for test_distributed.py: runs the command line
(``fastgan.cli.main.main``, what the ``fastgan`` script runs) with this rank's standard error
in ``FOLDER/stderr.RANK`` and its exit status in ``FOLDER/status.RANK``, so that a test can
check what every rank printed and returned.

    mpiexec -n 2 python distributed_cli.py FOLDER train --steps 40 ...
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastgan.cli.main import main
from fastgan.distributed.launch import detect

if __name__ == "__main__":
    folder, argv = Path(sys.argv[1]), sys.argv[2:]
    launch = detect()
    rank = 0 if launch is None or launch.rank is None else launch.rank
    sys.stderr = open(folder / f"stderr.{rank}", "w", buffering=1)  # noqa: SIM115
    status = main(argv)
    (folder / f"status.{rank}").write_text(str(status))
    sys.exit(status)
