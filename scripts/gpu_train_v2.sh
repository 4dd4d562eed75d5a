#!/usr/bin/env bash
# The one GPU call that trained the v2 ladder (FER+ + SMILEsmileD + MTFL), the
# leave-one-dataset-out runs and a small sweep, all in parallel on one device.
# Needs cache/pack (python scripts/train_ladder.py pack --quality 85) carried along.
# Env: BUDGET (seconds per job), AUGMENT_SKIP (skip the device check), JOBS (job specs).
# Writes checkpoints (+ run summaries) to $OUT in <= 8 files of <= 16 MiB.
set -uo pipefail
OUT=${OUT:-/tmp/v2out}
BUDGET=${BUDGET:-420}
RUN=/tmp/v2run
mkdir -p "$OUT"
lodo() {  # net -> its three leave-one-dataset-out jobs (selection never on the left-out set)
  echo "$1:0@run-name=$1_lodo_ferplus@train-sets=smilesmiled_train+mtfl_train@valid-set=mtfl_calib"
  echo "$1:0@run-name=$1_lodo_smilesmiled@train-sets=ferplus_train+mtfl_train"
  echo "$1:0@run-name=$1_lodo_mtfl@train-sets=ferplus_train+smilesmiled_train@valid-set=ferplus_valid"
}
jobs=(smile_n:0 smile_s:0 smile_m:0 smile_l:0 $(lodo smile_s) $(lodo smile_l))
# JOBS given (space-separated job specs, see train_ladder.py parallel): train those instead
if [ -n "${JOBS:-}" ]; then read -ra jobs <<< "$JOBS"; fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
# leave out any augmentation step whose kernels fail on this device (see the script)
# (AUGMENT_SKIP given: trust it, e.g. from an earlier call's check on the same machine kind)
if [ -n "${AUGMENT_SKIP+x}" ]; then SKIP=$AUGMENT_SKIP; else
  python3 scripts/check_cuda_steps.py | tee /tmp/check.txt || { echo "the net itself fails on this device"; exit 1; }
  SKIP=$(tail -n 1 /tmp/check.txt)
fi
if [ -n "$SKIP" ]; then jobs=("${jobs[@]/%/@augment-skip=$SKIP}"); fi
echo "augment-skip: ${SKIP:-none}"
t0=$SECONDS
python3 scripts/train_ladder.py parallel --isolated --cache-dir cache/pack --device cuda \
    --time-budget "$BUDGET" --jobs "${jobs[@]}" --out "$RUN"
rc=$?
if ! ls "$RUN"/*.pt >/dev/null 2>&1 && [ $((SECONDS - t0)) -lt 120 ]; then
  # every job died at once: train again with only the augmentation the earlier ladder used
  echo "all jobs failed early: retrying without lighting/blur/downup/noise/jpeg"
  jobs=("${jobs[@]/%/@augment-skip=lighting+blur+downup+noise+jpeg}")
  python3 scripts/train_ladder.py parallel --isolated --cache-dir cache/pack --device cuda \
      --time-budget $((BUDGET - SECONDS + t0 - 20)) --jobs "${jobs[@]}" --out "$RUN"
  rc=$?
fi
cd "$RUN" || exit 1
for f in smile_l*.pt; do cp "$f" "$OUT/"; done
tar -czf "$OUT/small.tar.gz" $(ls *.pt | grep -v '^smile_l') *.json logs.tar.gz 2>/dev/null
ls -la "$OUT"
exit $rc
