#!/usr/bin/env bash
# Distillation fine-tunes of the SevenNet spline trims on one GPU (issue 9), both at once, within about
# 8 minutes; writes the fine-tuned model files and their logs under $OUT. Installs nothing (as
# benchmarks/gpu.sh: ase and vesin travel as wheels in .gpu_wheels). Inputs (ignored by git, carried):
#   .spline_work/7net0_k32r12_fit.pt, .spline_work/labels_7net0/   (fit.py, make_labels.py on the CPU)
#   .spline_work/l3i5_k32r16_fit.pt,  .spline_work/l3i5_port.pt      (fit.py --port-output)
# The SevenNet-l3i5 labels are made here, on the GPU, from the port file (make_labels.py --device cuda).
#   run(command="bash training/sevennet_spline/gpu_finetune.sh", carry=[".gpu_wheels", ".spline_work"], timeout_s=560)
set -uo pipefail
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
SITE=/tmp/facetpot_gpu_site
mkdir -p "$SITE"
for wheel in .gpu_wheels/*.whl; do
    [ -e "$wheel" ] && python3 -m zipfile -e "$wheel" "$SITE"
done
export PYTHONPATH="$PWD:$SITE" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/device.txt" 2>&1
HERE=training/sevennet_spline
W=.spline_work
# SevenNet-0: labels made on the CPU; 7.5 minutes of training (max_time_minutes in the config)
timeout 520 python3 -m facetpot.cli train $HERE/finetune_7net0_gpu.yaml --overwrite > "$OUT/7net0_train.log" 2>&1 &
# SevenNet-l3i5: labels here (about a minute), then 5 minutes of training
timeout 150 python3 $HERE/make_labels.py $W/l3i5_port.pt -o $W/labels_l3i5 --device cuda --batch-atoms 2000 --copies 4 \
    --md-frames 100 > "$OUT/l3i5_labels.log" 2>&1
timeout 380 python3 -m facetpot.cli train $HERE/finetune_l3i5_gpu.yaml --overwrite > "$OUT/l3i5_train.log" 2>&1
wait
for m in 7net0 l3i5; do
    mkdir -p "$OUT/$m"
    for f in last.pt best.pt metrics.csv final_metrics.json statistics.json; do
        cp "$W/runs/${m}_gpu/$f" "$OUT/$m/" 2>/dev/null
    done
done
mkdir -p "$OUT/labels_l3i5"
for f in $W/labels_l3i5/*.extxyz; do gzip -c "$f" > "$OUT/labels_l3i5/$(basename "$f").gz"; done
tail -3 "$OUT"/*.log
echo done
