#!/usr/bin/env bash
# facet-s-universal's training on a lent GPU (issue 12), within 8 minutes: Facet-S trained on the teacher's
# labels, which are made beforehand on the CPU and carried with the working tree (ignored by git):
#   facet distill training/facet_s_universal/distill.yaml --stage label      # runs/facet_s_universal/labels/
#   run(command="bash benchmarks/gpu_distill.sh", carry=[".gpu_wheels", "runs/facet_s_universal/labels"],
#       timeout_s=540)
# (.gpu_wheels as in benchmarks/gpu.sh; only ase and vesin are needed here, keep the carry under 64 MiB.)
# Writes $OUT/facet_s_universal/{best.pt,last.pt,metrics.csv,final_metrics.json} and train.log. Afterwards,
# on the CPU: the errors against the DFT labels of the held-out MPtrj frames beside the teacher's,
#   python benchmarks/distill.py --universal $FILES_AT/facet_s_universal/best.pt --write
# then ship it (pretrained/README.md: registry entry, card, reference values).
set -uo pipefail
source benchmarks/gpu_env.sh
export OMP_NUM_THREADS=8
if ! ls runs/facet_s_universal/labels/part_*.extxyz > /dev/null 2>&1; then
    echo "no labels in runs/facet_s_universal/labels: make them on the CPU first (see the header)" | tee "$OUT/error.txt"
    exit 2
fi
timeout ${TRAIN_TIMEOUT:-450} python3 -m facetpot.cli train training/facet_s_universal/train_gpu.yaml --overwrite \
    > "$OUT/train.log" 2>&1
echo "facet train exit status $?" >> "$OUT/train.log"
mkdir -p "$OUT/facet_s_universal"
for f in best.pt last.pt metrics.csv final_metrics.json; do
    cp "runs/facet_s_universal_gpu/$f" "$OUT/facet_s_universal/" 2>/dev/null
done
tail -n 5 "$OUT/train.log"
echo done
