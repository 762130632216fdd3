#!/usr/bin/env bash
# Distillation fine-tunes of the SevenNet spline trims on one GPU (issue 9), the named ones at once
# (default: 7net0 l3i5; 7net0_stage2 continues 7net0), each for its config's training.max_time_minutes; writes the fine-tuned model
# files and logs under $OUT. Installs nothing (as benchmarks/gpu.sh: ase and vesin travel as wheels in
# .gpu_wheels). Inputs, made on the CPU (the shared MPtrj file does not travel), ignored by git, carried:
#   .spline_work/7net0_k32r12_fit.pt, .spline_work/labels_7net0/   (fit.py, make_labels.py)
#   .spline_work/l3i5_k32r16_fit.pt,  .spline_work/labels_l3i5/
#   run(command="bash training/sevennet_spline/gpu_finetune.sh l3i5", carry=[".gpu_wheels", ".spline_work"], timeout_s=...)
set -uo pipefail
source benchmarks/gpu_env.sh
export OMP_NUM_THREADS=4
HERE=training/sevennet_spline
W=.spline_work
MODELS=${*:-7net0 l3i5}
for m in $MODELS; do
    timeout ${TRAIN_TIMEOUT:-500} python3 -m facetpot.cli train $HERE/finetune_${m}_gpu.yaml --overwrite > "$OUT/${m}_train.log" 2>&1 &
done
wait
for m in $MODELS; do
    mkdir -p "$OUT/$m"
    run=$(sed -n 's/^ *output: *//p' $HERE/finetune_${m}_gpu.yaml)
    for f in last.pt best.pt metrics.csv final_metrics.json; do
        cp "$run/$f" "$OUT/$m/" 2>/dev/null
    done
    tail -n 3 "$OUT/${m}_train.log"
done
echo done
