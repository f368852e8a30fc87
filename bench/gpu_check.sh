#!/usr/bin/env bash
# The one GPU check (under 8 minutes on an H100/H200): the gpu-marked tests, then the GPU benchmarks, each
# bounded in time, with every log and one JSON summary in bench/out/gpu/. Run it from a clone with the
# project installed (.venv); it installs faiss's GPU build itself when it can.
#
#   bash bench/gpu_check.sh            # then paste bench/out/gpu/summary.md into bench/README.md
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=bench/out/gpu
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "no CUDA device visible to torch: nothing to check" | tee "$OUT/summary.md"
  exit 0
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1 || true

# faiss on the GPU: the CUDA 12 wheel, if the registry has it (the CPU build stays usable either way).
if ! "$PY" -c "import faiss, sys; sys.exit(0 if hasattr(faiss, 'StandardGpuResources') else 1)" 2>/dev/null; then
  timeout 120 "$PY" -m pip install -q faiss-gpu-cu12 > "$OUT/faiss_install.log" 2>&1 \
    || echo "faiss-gpu-cu12 could not be installed (see faiss_install.log); the faiss GPU test will skip"
fi

declare -A RC SECONDS_TAKEN
run() {  # name, time limit (s), command...
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  RC[$name]=$?
  SECONDS_TAKEN[$name]=$(( $(date +%s) - t0 ))
  echo "$name: exit ${RC[$name]} in ${SECONDS_TAKEN[$name]} s"
}

# Time limits add up to 8 minutes: the whole check fits the time a lent GPU is first given to.
run gpu_tests 100 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/
run encoder 45 "$PY" bench/gpu_encoder.py --model ViT-B-16 --batch 256 --json "$OUT/encoder.json"
run localizers 50 "$PY" bench/bench_localizers.py --devices cuda --train-batch-cuda 256
run training 50 "$PY" bench/bench_training.py --device cuda --batch 256 --steps 12 --models vslnet reler
run cluster 45 "$PY" bench/bench_cluster.py --model ViT-B-16 --videos 2 --seconds 30 --workers 0
# End to end on a 1080p30 H.264 recording (made on the CPU first): four segments decoded in parallel, in software
# and then on the GPU's video decoder (NVDEC through FFmpeg), the encoder on the GPU (issue target: an hour of
# 1080p in 30 s, i.e. 120x real time).
run indexing_1080p 100 "$PY" bench/bench_indexing.py --models ViT-B-16 --lengths 150 --height 1080 --workers 4 --hardware none cuda
# The index of a 1,000-hour library (6.75 M frames, made in memory) searched on the CPU and on the GPU, and
# exact search over every frame on the GPU.
run faiss_1000h 90 "$PY" bench/gpu_faiss.py --hours 1000 --queries 200 --json "$OUT/faiss.json"

{
  echo "# GPU check, $(date -u +%Y-%m-%d) on $(cat "$OUT/gpu.txt" 2>/dev/null | head -1)"
  echo
  echo "| step | exit | seconds | last lines |"
  echo "|---|---|---|---|"
  for name in gpu_tests encoder localizers training cluster indexing_1080p faiss_1000h; do
    last=$(tail -n 3 "$OUT/$name.log" | tr '\n' ' ' | tr '|' '/' | cut -c1-300)
    echo "| $name | ${RC[$name]} | ${SECONDS_TAKEN[$name]} | $last |"
  done
} > "$OUT/summary.md"
"$PY" - "$OUT" <<'PYEOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
summary = {"gpu": (out / "gpu.txt").read_text().strip() if (out / "gpu.txt").exists() else None,
           "logs": {p.stem: p.read_text()[-2000:] for p in sorted(out.glob("*.log"))}}
for name in ("encoder", "faiss"):
    if (out / f"{name}.json").exists():
        summary[name] = json.loads((out / f"{name}.json").read_text())
(out / "summary.json").write_text(json.dumps(summary, indent=1))
PYEOF
cat "$OUT/summary.md"
