#!/bin/bash
. /work/venv/bin/activate
unset OPENBLAS_L2_SIZE OPENBLAS_CORETYPE
out=/work/main/benchmarks/results/bench-2core-nogil-before-after
mkdir -p $out
for round in 1 2 3; do
  for side in before after; do
    dir=/work/wt-before; [ $side = after ] && dir=/work/main
    (cd $dir && PYTHONPATH=. python /work/main/benchmarks/profile_step.py fast-mlp 44 --backend numba --threads 1 --clock cpu > $out/profile-fast-mlp-b44-$side-$round.txt 2>&1)
    head -1 $out/profile-fast-mlp-b44-$side-$round.txt
  done
done
