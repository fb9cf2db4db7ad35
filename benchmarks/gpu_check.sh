#!/usr/bin/env bash
# The GPU measurements as one command, on a machine with a CUDA GPU (from the repository root or anywhere):
#   bash benchmarks/gpu_check.sh
# 1. the GPU-only tests of the speed options (bf16 'auto', the side-stream prefetcher, compile with inductor);
# 2. `benchmarks/run.py --kind gpu`: SwinIR-M and RRDB GAN steps, fp32 eager vs the best options, TFLOP/s
#    against the bf16 peak, peak memory, online AMO with a random MUSIQ; writes the GPU table of RESULTS.md
#    and exits 1 when the 2x target is missed.
# Uses .venv when there is one, else $PYTHON or python3 (which must have torch with CUDA and the project's
# dependencies; the project itself is installed without network if it is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || { echo "gpu_check.sh: no CUDA GPU visible to $PY (torch.cuda.is_available() is false)"; exit 1; }
"$PY" -c "import sr_iqa" 2>/dev/null || "$PY" -m pip install -q --no-deps --no-build-isolation -e .
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
SR_IQA_COMPILE_BACKEND=inductor "$PY" -m pytest -q -p no:cacheprovider tests/test_speed_options.py
PYTHONUNBUFFERED=1 "$PY" benchmarks/run.py --kind gpu "$@"
