"""What the tests share besides fixtures: helper modules and the scripts tests launch.

The tests import the helpers as ``from support import tolerances`` (pytest puts ``tests/`` on
``sys.path``): ``tolerances`` (every tolerance, with why it is safe), ``gradcheck`` (the
finite-difference checker), ``cuda_emulator`` (the CUDA kernels compiled for the CPU),
``learning_runs`` (the training runs the learning tests judge) and ``drills`` (the fault
drills' figures). Scripts run by path: ``distributed_worker.py`` and ``distributed_cli.py``
(what each rank runs under ``mpiexec``), ``learning_stats.py`` (the learning tests' statistics
over many seeds) and ``drills.py FILE`` (the fault drills' table).
"""
