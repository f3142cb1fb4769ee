#!/usr/bin/env bash
# One GPU session's work inside a fixed wall-clock budget, for a machine lent for minutes:
#   1. check that a headless GL context exists (the walks are rendered on this machine);
#   2. render and encode the training walks (`mirage train world --steps 0`);
#   3. train the generator with whatever time is left (`--time-limit` computed here) and copy the
#      small results (generator, config, loss curve) to RESULTS;
#   4. time the shipped model on CUDA (`mirage bench --device cuda --cuda-graphs`) into RESULTS.
# Usage: docs/scripts/gpu_session.sh RESULTS_DIR [PHASES]
#   PHASES: "walks train bench" (default all three); "walks" alone makes a short first call that
#   shows whether rendering works before the long one is spent, "train bench" a second call on the
#   same (still warm) machine. Environment: BUDGET_S, SEEDS, BATCH, LR, RUN_DIR; AE (the frozen
#   autoencoder's model dir), INIT (the generator to fine-tune; empty: train one from scratch),
#   EXTRA (more `mirage train world` options, e.g. "--context-blur 0.5").
# The run directory (RUN_DIR, default /tmp/gpu_world) holds the encoded walks (~2 GB for 192 worlds)
# and is never copied back.
set -uo pipefail

RESULTS=${1:?usage: gpu_session.sh RESULTS_DIR [PHASES]}
PHASES=" ${2:-walks train bench} "
BUDGET=${BUDGET_S:-540}          # seconds from now by which everything, copies included, is done
SEEDS=${SEEDS:-100000:100192}
BATCH=${BATCH:-256}
LR=${LR:-3e-4}
AE=${AE:-assets/models/default}
INIT=${INIT-assets/models/default}
EXTRA=${EXTRA:-}
INIT_ARGS=()
[ -n "$INIT" ] && INIT_ARGS=(--init "$INIT")
RUN=${RUN_DIR:-/tmp/gpu_world}
BENCH_S=${BENCH_S:-70}           # reserved for step 4
PY=${PYTHON:-python3}
start=$(date +%s)
mkdir -p "$RESULTS" "$RUN"
log() { echo "[gpu_session +$(( $(date +%s) - start ))s] $*"; }
mirage() { "$PY" -m explorer.cli "$@"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$RESULTS/gpu.txt" 2>&1
"$PY" -c "import torch, sys; print(torch.__version__, torch.cuda.is_available(), sys.version.split()[0])"

# 1. Fail fast (and hand the machine back early) when no GL context can be made.
if ! "$PY" -c "from engine.world.renderer import egl_available as ok; import sys; sys.exit(0 if ok() else 1)"; then
    log "no headless GL context: cannot render training walks here"
    "$PY" -c "import moderngl; moderngl.create_standalone_context(backend='egl')" 2>&1 | tail -5
    exit 3
fi

# 2. Walks (seconds per world; rendered and encoded on this machine).
if [[ $PHASES == *" walks "* ]]; then
    log "walks $SEEDS"
    mirage train world --autoencoder "$AE" "${INIT_ARGS[@]}" --out "$RUN" --seeds "$SEEDS" --steps 0 --no-progress \
        || { log "walk preparation failed"; exit 4; }
    log "walks done: $(du -sh "$RUN/walks.safetensors" | cut -f1)"
fi
[[ $PHASES == *" bench "* ]] || BENCH_S=0

# 3. Train with the time that is left, less the bench, the history canvases (~1 min) and copies.
left=$(( start + BUDGET - $(date +%s) - BENCH_S - 75 ))
if [[ $PHASES != *" train "* ]]; then
    :
elif [ "$left" -lt 60 ]; then
    log "only ${left}s left for training: skipped"
else
    minutes=$("$PY" -c "print(round($left / 60, 2))")
    log "training for $minutes min (batch $BATCH, lr $LR)"
    # shellcheck disable=SC2086  # EXTRA is a list of options
    timeout -k 10 $(( left + 70 )) "$PY" -m explorer.cli train world --autoencoder "$AE" "${INIT_ARGS[@]}" \
        --out "$RUN" --seeds "$SEEDS" --steps 1000000 --batch "$BATCH" --lr "$LR" --time-limit "$minutes" \
        --save-every 2000 --no-progress $EXTRA
    log "training exited with $?"
fi
for f in model/generator.safetensors model/config.json world_loss.csv world_loss.png; do
    [ -f "$RUN/$f" ] && cp "$RUN/$f" "$RESULTS/"
done

# 4. CUDA timings of the shipped model (torch eager and with CUDA graphs).
left=$(( start + BUDGET - $(date +%s) - 5 ))
if [[ $PHASES == *" bench "* ]] && [ "$left" -gt 20 ]; then
    log "bench (${left}s)"
    timeout -k 5 "$left" "$PY" -m explorer.cli bench --device cuda --cuda-graphs --backends torch \
        --no-memory-bench --step-frames 200 --json "$RESULTS/bench_gpu.json"
    log "bench exited with $?"
fi
log "done"
