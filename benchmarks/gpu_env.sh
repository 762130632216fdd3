# Sourced by the device scripts (benchmarks/gpu.sh, training/sevennet_spline/gpu_finetune.sh) from the
# repository root: sets $OUT, unpacks the carried wheels (.gpu_wheels: ase, vesin) into /tmp and puts them
# and the repository on PYTHONPATH (nothing is installed), and writes the device's name to $OUT/device.txt.
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
SITE=/tmp/facetpot_gpu_site
mkdir -p "$SITE"
for wheel in .gpu_wheels/*.whl; do
    [ -e "$wheel" ] && python3 -m zipfile -e "$wheel" "$SITE"
done
export PYTHONPATH="$PWD:$SITE" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/device.txt" 2>&1
