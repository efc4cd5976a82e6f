#!/usr/bin/env bash
# Everything the GPU session measures, in one command from the repository root:
#   bash benchmarks/gpu/run.sh            # figures under $OUT (the device tool's folder) or ./gpu-out
#   bash benchmarks/gpu/run.sh --tiny     # the same steps on a CPU, to try it anywhere
# Before: bash benchmarks/gpu/prepare_wheels.sh here, and carry benchmarks/gpu/wheels to the machine.
# Writes: machine.txt (nvidia-smi, versions), estimate.json (`llaso train --estimate-memory` for the shapes
# the benchmark trains), figures.json and bench.log (bench_llaso_base.py).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT_DIR=${OUT:-gpu-out}
mkdir -p "$OUT_DIR"
SITE=$(mktemp -d)/site
if compgen -G "benchmarks/gpu/wheels/*.whl" >/dev/null; then
  python -m pip install -q --no-index --no-deps --target "$SITE" benchmarks/gpu/wheels/*.whl \
    || { echo "error: could not install the carried wheels" >&2; exit 1; }
fi
export PYTHONPATH="$SITE:$PWD/src" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
{ nvidia-smi || true; python -c 'import sys, torch, transformers; print(sys.version); print("torch", torch.__version__, "cuda", torch.version.cuda); print("transformers", transformers.__version__)'; } \
  > "$OUT_DIR/machine.txt" 2>&1
python -m llaso.cli train --config configs/train/instruct.yaml --estimate-memory \
  --shape configs/model/llaso-base.yaml --seconds 5,10,30 --gpu-memory 80GiB --json > "$OUT_DIR/estimate.json" 2> "$OUT_DIR/estimate.err" \
  || echo "the memory estimate failed: see estimate.err"
python benchmarks/gpu/bench_llaso_base.py --out "$OUT_DIR/figures.json" "$@" 2>&1 | tee "$OUT_DIR/bench.log"
