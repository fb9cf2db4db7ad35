#!/usr/bin/env bash
# The user's path once, short, through the README's commands and `accelerate launch` (on a GPU when there is
# one): the demo set, NIQE crop scores, stage 1 with cached AMO, a LoRA stage against NIQE, then
# `eval --checkpoint` of both stages. Checks the files each step must leave and prints the eval tables.
#   PY=python3 bash benchmarks/gpu_user_path.sh [WORK=/tmp/sr_iqa_user_path] [STAGE1_ITERS=300] [STAGE2_ITERS=100]
#   DEMO_ARGS: sizes for `sr-iqa data demo` (the test's: a smaller set, --crop-size 96 ...)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
WORK=${1:-/tmp/sr_iqa_user_path}
STAGE1_ITERS=${2:-300}
STAGE2_ITERS=${3:-100}
DEMO="$WORK/demo"
RUNS="$WORK/experiments"
launch=("$PY" -m accelerate.commands.launch --num_processes 1 --num_machines 1 --dynamo_backend no -m sr_iqa)
step() { echo "== $(date +%T) $*"; }

rm -rf "$WORK" && mkdir -p "$WORK"
step "demo set"
# shellcheck disable=SC2086  # DEMO_ARGS: several flags
"$PY" -m sr_iqa data demo "$DEMO" ${DEMO_ARGS:-}
step "NIQE scores, full images and the 96:32 grid"
"$PY" -m sr_iqa score --dataset "$DEMO" --metric niqe --grid 96:32 --cache "$DEMO/scores.db"
data=("datasets.train.dataroot_gt=$DEMO/Train/images/demo" "datasets.train.dataroot_label=$DEMO/Train/labels/demo"
      "datasets.val.dataroot_gt=$DEMO/Test/GT/Test-demo/images"
      "datasets.val.dataroot_label=$DEMO/Test/GT/Test-demo/labels"
      "datasets.val.dataroot_lq=$DEMO/Test/Blind_Degradation_Benchmark_LQ/Test-demo/Blind_LR"
      "sampler.cache=$DEMO/scores.db" "path.experiments_root=$RUNS" "logger.use_tb_logger=false")
# The demo's stage 1 starts from Real-ESRGAN and trains with the original VGG19; their weights (150 MB converted)
# do not fit what travels to the GPU machine, so here it trains from scratch with L1 + GAN.
from_scratch=("path.pretrain_network_g=null" "path.strict_load_g=true" "train.perceptual_opt=null")
step "stage 1: cached AMO, $STAGE1_ITERS iterations"
"${launch[@]}" train -opt options/demo/train_rrdb_demo.yml "${data[@]}" "${from_scratch[@]}" name=stage1 \
  "train.total_iter=$STAGE1_ITERS" "val.val_freq=$STAGE1_ITERS" \
  "logger.save_checkpoint_freq=$STAGE1_ITERS"
test -f "$RUNS/stage1/models/net_g_ema_$STAGE1_ITERS.safetensors"
step "stage 2: LoRA against NIQE, $STAGE2_ITERS iterations"
"${launch[@]}" train -opt options/demo/finetune_rrdb_demo.yml "${data[@]}" name=stage2 \
  "path.pretrain_network_g=$RUNS/stage1" "train.total_iter=$STAGE2_ITERS" "val.val_freq=$STAGE2_ITERS" \
  "logger.save_checkpoint_freq=$STAGE2_ITERS"
adapter="$RUNS/stage2/models/lora_$STAGE2_ITERS.safetensors"
test -f "$adapter"
tail -n 1 "$RUNS/stage2/logs/validation.jsonl"
step "eval --checkpoint: stage 1, and stage 1 + the LoRA adapter"
metrics=(--metrics psnr ssim niqe piqe)
"${launch[@]}" eval --dataset "$DEMO" --checkpoint "$RUNS/stage1" --name "AMO (stage 1)" "${metrics[@]}" \
  --out "$WORK/eval_stage1"
"${launch[@]}" eval --dataset "$DEMO" --checkpoint "$RUNS/stage1" --adapter "$adapter" --name "AMO + LoRA FT" \
  "${metrics[@]}" --out "$WORK/eval_stage2"
test -f "$WORK/eval_stage1/summary.json" && test -f "$WORK/eval_stage2/summary.json"
step "done"
