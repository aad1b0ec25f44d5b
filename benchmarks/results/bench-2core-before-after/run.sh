#!/bin/bash
# No slowdown of the existing presets: aece908 (before this session) against HEAD, alternating
# processes, each with PyTorch eager beside it as the yardstick; 1 thread.
. /work/venv/bin/activate
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
for round in 3 4 5; do
  for side in before after; do
    dir=/work/main; [ $side = before ] && dir=/work/wt-before
    (cd $dir && PYTHONPATH=$dir python -m fastgan bench --preset pytorch-vanilla,fast-mlp \
       --backend numba --peers eager --threads 1 --repeats 10 \
       --json /tmp/ba-$side-$round.json > /tmp/ba-$side-$round.txt 2>&1)
    date +"%T $side $round"
  done
done
python - <<'PY'
import json, statistics
for side in ("before", "after"):
    for r in (1, 2, 3, 4, 5):
        d = json.load(open(f"/tmp/ba-{side}-{r}.json"))
        for case in d["results"]:
            c = case["contenders"]
            print(side, r, case["preset"], case["batch"], "numba ms %.2f" % c["numba"]["step_ms"]["median"],
                  "eager ms %.2f" % c["torch eager"]["step_ms"]["median"],
                  "numba/eager speed %.3f" % c["numba"]["ratio_to_torch_eager"])
PY
