#!/usr/bin/env bash
# Every GPU check and benchmark of facetpot in one run on the device machine (at most 8.0 minutes by its timeouts,
# about 5 expected: 4.5 measured before the training step was added);
# writes under $OUT. Installs nothing: the device's python3 has torch (CUDA), e3nn, numpy, scipy, pyyaml
# and tqdm; ase and vesin travel as wheels, unpacked (not installed) into /tmp at the start. Once per
# session, on the development machine:
#   .venv/bin/pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
#       -d .gpu_wheels ase vesin cuequivariance==0.13.0 cuequivariance-torch==0.13.0 \
#       cuequivariance-ops-torch-cu12==0.13.0 cuequivariance-ops-cu12==0.13.0 opt-einsum nvidia-ml-py platformdirs \
#       pytest pluggy iniconfig packaging
#   (about 45 MB; the carry limit is 64 MiB; the device's CUDA torch brings cuBLAS; the -cu12 ops do not load with
#   the device's CUDA 13 torch, and the -cu13 ones (73 MB) do not fit beside the rest)
#   echo /.gpu_wheels/ >> .git/info/exclude
#   mkdir -p .gpu_data/mptrj && cp ../shared/data/mptrj/mptrj-random-1k.extxyz .gpu_data/mptrj/   (3.7 MB; ../shared
#   does not travel; .gpu_data is ignored, never committed)
#   echo /.gpu_data/ >> .git/info/exclude
# then, with the device tool: run(command="bash benchmarks/gpu.sh", carry=[".gpu_wheels", ".gpu_data"], timeout_s=540),
# give_back, and record the numbers in benchmarks/RESULTS.md with the device's name ($OUT/device.txt).
# Pending GPU work after this script (about 9 minutes of the 15): facet-s-universal (benchmarks/gpu_distill.sh),
# or the distillation of the shipped SevenNet spline trims (training/sevennet_spline/README.md, "What is left").
set -uo pipefail
source benchmarks/gpu_env.sh
python3 -c "import torch, e3nn, ase, vesin; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    2>&1 | tee "$OUT/environment.txt"
# what the device's python has of the peers' dependencies (a GPU training race needs MACE's and SevenNet's:
# carried as wheels, they exceed the 64 MiB carry limit unless pandas, matplotlib, h5py, sklearn are there)
python3 -c "import importlib.util as u, sys; print(sys.version.split()[0], {m: bool(u.find_spec(m)) for m in
    ('pandas', 'matplotlib', 'h5py', 'sklearn', 'lmdb', 'orjson', 'matscipy', 'torch_geometric', 'mace', 'sevenn')})" \
    2>&1 | tee -a "$OUT/environment.txt"
# 0. the CUDA tests of the suite (float64 on CUDA = CPU, rotations, float32 close to float64): tests/test_cuda.py
TRITON_INTERPRET=0 timeout 30 python3 -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider 2>&1 \
    | tee "$OUT/cuda_tests.log"
# 1. the convolution backends (edgewise, density, cueq, triton): float64 agreement on CUDA first, then one layer and
#    the whole model at 1k / 10k / 100k atoms (issue 11's kernels; first Triton run on a GPU)
timeout 100 python3 benchmarks/kernels.py 2>&1 | tee "$OUT/kernels.log"
# 2. the speed/memory ladder (Si 512 to 262,144 atoms)
timeout 110 python3 benchmarks/gpu_check.py 2>&1 | tee "$OUT/gpu_check.log"
# 3. batched relaxation on the GPU (an untrained model: the machinery and the time per step)
timeout 50 python3 benchmarks/gpu_relax.py 2>&1 | tee "$OUT/relax_gpu.log"
# 4. the shipped default model on users' workloads: single points one by one and batched, MD steps, batched relaxation
FACETPOT_SHARED_DATA=$PWD/.gpu_data timeout 130 python3 benchmarks/gpu_workloads.py 2>&1 | tee "$OUT/workloads_gpu.log"
# 5. one training step (issue 32's per-step table) on the GPU: Facet-S and the shipped trim on the same MPtrj batches;
#    the peers (MACE, SevenNet) have no venv here and are not carried (mace-torch pins e3nn 0.4.4): CPU rows only
FACETPOT_SHARED_DATA=$PWD/.gpu_data timeout 60 python3 benchmarks/training_step.py --device cuda --here \
    --models facet-s facet-7net0 --timeout 25 --no-record 2>&1 | tee "$OUT/training_step_gpu.log"
echo "done"
