#!/usr/bin/env bash
# One lent GPU session's decoder work inside a fixed wall-clock budget (the machine is lent for
# minutes, and only 8 files of 16 MiB come back):
#   1. check that a headless GL context exists (frames and walks are rendered on this machine);
#   2. collect generated-latent pairs with the shipped model (`mirage train decoder-pairs`), in
#      parallel CPU processes of two worlds each: training worlds for the decoder, and held-out
#      ones (299990:, --seed 1, as docs/MODEL.md's stage-13 probe) to choose snapshots on;
#   3. train the decoder in several runs at once on the one GPU (`mirage train decoder
#      --grow-blocks`), each RUNS entry "name:adv_weight", with whatever time is left, keeping a
#      snapshot every SNAP_EVERY steps;
#   4. probe every snapshot and the shipped decoder (docs/scripts/decoder_probe.py --device cuda)
#      and copy back the KEEP best by clean + generated sharpness among those whose clean PSNR is
#      at least MIN_CLEAN dB (the probe's 29.0 gave an eval-set ceiling of ~28.1 before), with a
#      tar of the logs, loss curves and probe numbers.
# Usage: docs/scripts/gpu_decoder.sh RESULTS_DIR
# Environment: BUDGET_S (540), PAIR_SEEDS (200000:200024), PROBE_SEEDS (299990:299994), RUNS
# ("a:0.5 b:0.75"), BATCH (64), LR (2e-4), GROW (3), SNAP_EVERY (400), KEEP (7), MIN_CLEAN (29.0),
# MODEL (assets/models/default), PAIR_S (seconds allowed for step 2, 170), PAIR_EXTRA (more
# decoder-pairs options, e.g. "--kinds retrace" for a quick check on a CPU), WORK (/tmp/gpu_decoder).
set -uo pipefail

RESULTS=${1:?usage: gpu_decoder.sh RESULTS_DIR}
BUDGET=${BUDGET_S:-540}
PAIR_SEEDS=${PAIR_SEEDS:-200000:200024}
PROBE_SEEDS=${PROBE_SEEDS:-299990:299994}
RUNS=${RUNS:-a:0.5 b:0.75}
BATCH=${BATCH:-64}
LR=${LR:-2e-4}
GROW=${GROW:-3}
SNAP_EVERY=${SNAP_EVERY:-400}
KEEP=${KEEP:-7}
MIN_CLEAN=${MIN_CLEAN:-29.0}
MODEL=${MODEL:-assets/models/default}
PAIR_S=${PAIR_S:-170}
PAIR_EXTRA=${PAIR_EXTRA:-}
WORK=${WORK:-/tmp/gpu_decoder}
PY=${PYTHON:-python3}
start=$(date +%s)
mkdir -p "$RESULTS" "$WORK/pairs" "$WORK/logs"
log() { echo "[gpu_decoder +$(( $(date +%s) - start ))s] $*" | tee -a "$WORK/logs/main.log"; }
mirage() { "$PY" -m explorer.cli "$@"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$WORK/logs/gpu.txt" 2>&1
log "$("$PY" -c "import torch, sys; print(torch.__version__, torch.cuda.is_available(), sys.version.split()[0])")"

# 1. Fail fast when no GL context can be made.
if ! "$PY" -c "from engine.world.renderer import egl_available as ok; import sys; sys.exit(0 if ok() else 1)"; then
    log "no headless GL context: cannot render here"
    "$PY" -c "import moderngl; moderngl.create_standalone_context(backend='egl')" 2>&1 | tail -5
    exit 3
fi

# 2. Pairs, two worlds per process (one CPU thread each).
chunks() {  # "A:B" -> "A:A+2 A+2:A+4 ..."
    local a=${1%:*} b=${1#*:}
    while [ "$a" -lt "$b" ]; do echo "$a:$(( a + 2 < b ? a + 2 : b ))"; a=$(( a + 2 )); done
}
log "pairs: training worlds $PAIR_SEEDS, held-out $PROBE_SEEDS"
for r in $(chunks "$PAIR_SEEDS"); do
    timeout -k 5 "$PAIR_S" "$PY" -m explorer.cli train decoder-pairs --model "$MODEL" --seeds "$r" --threads 1 $PAIR_EXTRA \
        --out "$WORK/pairs/train_${r/:/_}.safetensors" --no-progress >"$WORK/logs/pairs_${r/:/_}.log" 2>&1 &
done
for r in $(chunks "$PROBE_SEEDS"); do
    timeout -k 5 "$PAIR_S" "$PY" -m explorer.cli train decoder-pairs --model "$MODEL" --seeds "$r" --threads 1 $PAIR_EXTRA \
        --seed 1 --out "$WORK/pairs/probe_${r/:/_}.safetensors" --no-progress >"$WORK/logs/probe_${r/:/_}.log" 2>&1 &
done
wait
TRAIN_PAIRS=("$WORK"/pairs/train_*.safetensors)
PROBE_PAIRS=("$WORK"/pairs/probe_*.safetensors)
log "pairs done: ${#TRAIN_PAIRS[@]} training files, ${#PROBE_PAIRS[@]} held-out files"
[ -e "${TRAIN_PAIRS[0]}" ] || { log "no training pairs were written"; tail -5 "$WORK"/logs/pairs_*.log; exit 4; }
PROBE_ARGS=()
[ -e "${PROBE_PAIRS[0]}" ] && PROBE_ARGS=(--pairs "${PROBE_PAIRS[@]}")

# 3. The runs side by side, with the time that is left less the probe (~60 s) and the copies.
left=$(( start + BUDGET - $(date +%s) - 90 ))
minutes=$("$PY" -c "print(round(max($left, 30) / 60, 2))")
log "training ${RUNS} for $minutes min each (batch $BATCH, lr $LR, grow $GROW)"
for run in $RUNS; do
    name=${run%%:*} adv=${run#*:}
    timeout -k 10 $(( left + 60 )) "$PY" -m explorer.cli train decoder --model "$MODEL" --out "$WORK/run_$name" \
        --steps 1000000 --batch "$BATCH" --lr "$LR" --adv-weight "$adv" --latent-degrade 0.5 \
        --pairs "${TRAIN_PAIRS[@]}" --pairs-share 0.5 --aligned-psnr 20 --grow-blocks "$GROW" \
        --snapshot-every "$SNAP_EVERY" --time-limit "$minutes" --threads 2 --no-progress \
        >"$WORK/logs/run_$name.log" 2>&1 &
done
wait
log "training done: $(ls -d "$WORK"/run_*/snapshots/step* 2>/dev/null | wc -l) snapshots"

# 4. Probe, choose, copy.
SNAPS=("$WORK"/run_*/snapshots/step*)
dev=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
# Bounded: the probe writes its JSON after every model, so what it reached is chosen from.
timeout -k 5 $(( start + BUDGET - $(date +%s) - 25 )) "$PY" docs/scripts/decoder_probe.py "$MODEL" "${SNAPS[@]}" "${PROBE_ARGS[@]}" --device "$dev" --threads 4 \
    --json "$WORK/logs/probe.json" 2>&1 | tee "$WORK/logs/probe.txt" | tail -4
"$PY" - "$WORK/logs/probe.json" "$RESULTS" "$KEEP" "$MIN_CLEAN" "$MODEL" <<'EOF' 2>&1 | tee -a "$WORK/logs/main.log"
import json, shutil, sys
from pathlib import Path

probe, results, keep, min_clean, shipped = json.load(open(sys.argv[1])), Path(sys.argv[2]), int(sys.argv[3]), \
    float(sys.argv[4]), sys.argv[5]
def score(r):
    return r["soften_0.0"]["sharpness"] + r.get("generated", {"sharpness": 0.0})["sharpness"]
snaps = {k: v for k, v in probe.items() if k != shipped}
ok = sorted((k for k, v in snaps.items() if v["soften_0.0"]["psnr"] >= min_clean), key=lambda k: -score(snaps[k]))
rest = sorted((k for k in snaps if k not in ok), key=lambda k: -snaps[k]["soften_0.0"]["psnr"])
for k in (ok + rest)[:keep]:
    run, step = Path(k).parts[-3], Path(k).name
    shutil.copyfile(Path(k) / "autoencoder.safetensors", results / f"{run}_{step}.safetensors")
    print(f"kept {run} {step}: clean {snaps[k]['soften_0.0']['psnr']:.2f} dB, score {score(snaps[k]):.3f}")
EOF
for d in "$WORK"/run_*; do
    n=$(basename "$d")
    cp "$d/decoder_loss.csv" "$WORK/logs/${n}_loss.csv" 2>/dev/null
    cp "$d/config.json" "$WORK/logs/${n}_config.json" 2>/dev/null
done
log "done"
tar -C "$WORK" -cf "$RESULTS/logs.tar" logs
