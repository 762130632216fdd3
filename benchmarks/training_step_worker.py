"""One model's side of ``benchmarks/training_step.py``: the time of one training step, in the model's own venv.

    python training_step_worker.py facet facet-s-universal --data F.extxyz --indices 3,17,... --frames 8
    python training_step_worker.py sevennet 7net-0 --data F.extxyz --indices ... --frames 8
    python training_step_worker.py mace mace-mp-0-medium --data F.extxyz --indices ... --frames 8

Frame ``--indices`` (positions in ``--data``), cut into consecutive batches of ``--frames``, are the batches;
every batch gets ``--warmup`` untimed steps, then ``--reps`` timed ones. One step, the same work for every
model: forward (energy), forces and stress by autograd with ``create_graph`` (the model in training mode),
an MSE loss on energy per atom + forces + stress (weights 1, 1, 1), backward to the parameters, one Adam step
(lr 1e-3, no gradient clipping, no EMA, no schedule), float32 on ``--device`` (cpu; cuda: each step ends with
``torch.cuda.synchronize`` inside the timing), each code's own step code:

* facet: the body of ``facetpot.training.Trainer.train_step`` as ``facet train`` runs it: ``model.train()``,
  ``zero_grad(set_to_none=False)``, ``batch.to(device, dtype)`` (the training loop's own conversion),
  ``facetpot.training.distributed.loss_backward`` (``loss.type: mse``), ``optimizer.step()``;
  ``train_step``'s finiteness check, gradient clipping, schedule and EMA are left out, as for the peers;
* SevenNet: ``sevenn.train.trainer.Trainer.run_one_epoch`` over a one-batch loader (``zero_grad``,
  ``batch.to``, forward with its ``ForceStressOutputFromEdge``, sevenn's loss terms from
  ``get_loss_functions_from_config`` with ``loss: mse``, stress in kbar as sevenn trains it, backward, step);
* MACE: ``mace.tools.train.take_step`` (``batch.to``, ``to_dict``, forward with ``training=True,
  compute_stress=True``, ``WeightedEnergyForcesStressLoss(1, 1, 1)``, backward, step; ``ema=None``,
  ``max_grad_norm=None``).

Not timed: reading the frames, building the graphs (neighbour lists, each code's own: ``frame_to_graph``,
sevenn's ``graph_build``, MACE's ``AtomicData.from_config``), and collating a fresh batch for every step
(``collate`` / ``Batch.from_data_list``; fresh, because SevenNet and MACE mark tensors of the batch they get as
requiring gradients). One ``RESULT`` line: trainable parameters, seconds of every timed step per batch, atoms
and edges per batch, the torch version.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Callable, List, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report  # noqa: E402  (benchmarks/harness.py: standard library only)

LR = 1e-3
#: facetpot's loss config (``loss`` section of ``facet train``): MSE, weights 1, 1, 1
FACET_LOSS = {"type": "mse", "huber_delta": 0.01, "energy_weight": 1.0, "forces_weight": 1.0, "stress_weight": 1.0}
#: the 89 elements of MPtrj (and of MACE-MP-0, SevenNet-0 and the facet models): Z 1-83 and 89-94
MPTRJ_ZS = list(range(1, 84)) + list(range(89, 95))
#: MACE-MP-0 medium (2023-12-03-mace-128-L1): hyperparameters; avg_num_neighbors only scales messages
MACE_MP0_MEDIUM = dict(
    r_max=6.0,
    num_bessel=8,
    num_polynomial_cutoff=5,
    max_ell=3,
    num_interactions=2,
    hidden_irreps="128x0e+128x1o",
    MLP_irreps="16x0e",
    correlation=3,
    gate="silu",
    avg_num_neighbors=61.96,
    radial_MLP=[64, 64, 64],
    interaction="RealAgnosticResidualInteractionBlock",
)


def time_steps(
    step: Callable, make_batch: Callable[[int], object], n_batches: int, reps: int, warmup: int, device: torch.device
) -> List[List[float]]:
    """Seconds of each timed ``step(batch)``, per batch: ``warmup`` untimed steps, then ``reps`` timed ones.
    ``make_batch(b)`` (a fresh collated batch ``b``) runs before every step, outside the timing."""
    seconds = []
    for b in range(n_batches):
        times = []
        for k in range(warmup + reps):
            batch = make_batch(b)
            t = time.perf_counter()
            step(batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dt = time.perf_counter() - t
            if k >= warmup:
                times.append(dt)
        seconds.append(times)
    return seconds


def trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def read_atoms(path: str, wanted: Sequence[int]) -> dict:
    """ASE Atoms of the frames ``wanted`` of ``path`` (labels in their SinglePointCalculator), by index."""
    from ase.io import iread

    keep = set(wanted)
    return {k: a for k, a in enumerate(iread(path, index=":")) if k in keep}


def facet_run(name: str, path: str, batches: List[List[int]], device: torch.device):
    """facetpot: (step, make_batch, model, (atoms, edges) per batch); see the module docstring."""
    import facetpot
    from facetpot.data.batching import collate, frame_to_graph
    from facetpot.data.readers import iter_frames
    from facetpot.training.distributed import loss_backward

    dtype = torch.float32
    model = facetpot.load_model(name, device=device, dtype="float32")  # the device's default backend, as facet train
    model.requires_grad_(True)  # facet train freezes nothing unless finetune.freeze says so
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=LR)
    keep = {i for b in batches for i in b}
    frames = {k: f for k, f in enumerate(iter_frames(path)) if k in keep}
    graphs = [[frame_to_graph(frames[i], model.cutoff) for i in b] for b in batches]

    def step(batch) -> None:  # Trainer.train_step without finiteness check, clipping, schedule, EMA
        model.train()
        optimizer.zero_grad(set_to_none=False)
        loss_backward(model, batch.to(device, dtype), FACET_LOSS)
        optimizer.step()

    def make_batch(b: int):
        return collate(graphs[b])

    sizes = [(g.graph.num_atoms, int(g.graph.edge_index.shape[1])) for g in map(make_batch, range(len(batches)))]
    return step, make_batch, model, sizes


def sevennet_run(name: str, path: str, batches: List[List[int]], device: torch.device):
    """SevenNet: (step, make_batch, model, (atoms, edges) per batch); see the module docstring."""
    import sevenn._keys as KEY
    import sevenn.util
    from sevenn.train.dataload import graph_build
    from sevenn.train.loss import get_loss_functions_from_config
    from sevenn.train.trainer import Trainer
    from torch_geometric.data import Batch

    cp = sevenn.util.load_checkpoint(name)  # the checkpoint inside the wheel (7net-0: SevenNet_0__11Jul2024)
    model = cp.build_model()  # float32, e3nn tensor products (no cuEquivariance / flash on the CPU)
    cutoff = cp.config[KEY.CUTOFF]
    atoms = read_atoms(path, [i for b in batches for i in b])
    graphs = [
        graph_build([atoms[i] for i in b], cutoff, num_cores=1, transfer_info=False, y_from_calc=True) for b in batches
    ]
    loss_cfg = {KEY.LOSS: "mse", KEY.FORCE_WEIGHT: 1.0, KEY.STRESS_WEIGHT: 1.0, KEY.IS_TRAIN_STRESS: True}
    trainer = Trainer(
        model, get_loss_functions_from_config(loss_cfg), torch.optim.Adam, {"lr": LR}, scheduler_cls=None, device=device
    )

    def step(batch) -> None:
        trainer.run_one_epoch([batch], is_train=True)

    def make_batch(b: int):
        return Batch.from_data_list(graphs[b])

    sizes = [(int(g[KEY.POS].shape[0]), int(g[KEY.EDGE_IDX].shape[1])) for g in map(make_batch, range(len(batches)))]
    return step, make_batch, model, sizes


def mace_model(z_table):
    """``ScaleShiftMACE`` with MACE-MP-0 medium's hyperparameters (``MACE_MP0_MEDIUM``), random weights,
    atomic energies 0, scale 1, shift 0; built as ``mace_run_train --model ScaleShiftMACE`` builds it
    (its default ``use_reduced_cg=False``, bessel radial basis, no pair repulsion, one head)."""
    import numpy as np
    from e3nn import o3
    from mace import modules

    h = MACE_MP0_MEDIUM
    interaction = modules.interaction_classes[h["interaction"]]
    return modules.ScaleShiftMACE(
        r_max=h["r_max"],
        num_bessel=h["num_bessel"],
        num_polynomial_cutoff=h["num_polynomial_cutoff"],
        max_ell=h["max_ell"],
        interaction_cls=interaction,
        interaction_cls_first=interaction,
        num_interactions=h["num_interactions"],
        num_elements=len(z_table),
        hidden_irreps=o3.Irreps(h["hidden_irreps"]),
        MLP_irreps=o3.Irreps(h["MLP_irreps"]),
        atomic_energies=np.zeros(len(z_table)),
        avg_num_neighbors=h["avg_num_neighbors"],
        atomic_numbers=z_table.zs,
        correlation=h["correlation"],
        gate=modules.gate_dict[h["gate"]],
        radial_MLP=h["radial_MLP"],
        radial_type="bessel",
        distance_transform="None",
        pair_repulsion=False,
        use_reduced_cg=False,
        heads=["Default"],
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    )


def mace_run(name: str, path: str, batches: List[List[int]], device: torch.device):
    """MACE: (step, make_batch, model, (atoms, edges) per batch); see the module docstring."""
    torch.set_default_dtype(torch.float32)  # mace_run_train --default_dtype float32
    torch.manual_seed(0)
    from mace import data, modules, tools
    from mace.tools.torch_geometric.batch import Batch

    take_step = importlib.import_module("mace.tools.train").take_step  # (mace.tools.train is also a function)
    z_table = tools.AtomicNumberTable(MPTRJ_ZS)
    model = mace_model(z_table).to(device)
    model.train()  # MACE's training loop puts the model in training mode once per epoch
    keys = data.KeySpecification(
        info_keys={"energy": "REF_energy", "stress": "REF_stress"}, arrays_keys={"forces": "REF_forces"}
    )
    atoms = read_atoms(path, [i for b in batches for i in b])
    for a in atoms.values():  # the labels where mace_run_train's --energy_key etc. put them
        a.info["REF_energy"], a.info["REF_stress"] = a.get_potential_energy(), a.get_stress()
        a.arrays["REF_forces"] = a.get_forces()
    graphs = [
        [
            data.AtomicData.from_config(
                data.config_from_atoms(atoms[i], keys),
                z_table=z_table,
                cutoff=MACE_MP0_MEDIUM["r_max"],
                heads=["Default"],
            )
            for i in b
        ]
        for b in batches
    ]
    loss_fn = modules.WeightedEnergyForcesStressLoss(energy_weight=1.0, forces_weight=1.0, stress_weight=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    outputs = {"forces": True, "virials": False, "stress": True}

    def step(batch) -> None:
        take_step(model, loss_fn, batch, optimizer, None, outputs, None, device)

    def make_batch(b: int):
        return Batch.from_data_list(graphs[b])

    sizes = [(int(g.positions.shape[0]), int(g.edge_index.shape[1])) for g in map(make_batch, range(len(batches)))]
    return step, make_batch, model, sizes


RUNS = {"facet": facet_run, "sevennet": sevennet_run, "mace": mace_run}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=sorted(RUNS))
    ap.add_argument("name", help="facet model name, sevenn checkpoint name, or a label (mace)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--indices", required=True, help="comma-separated frame indices, batch after batch")
    ap.add_argument("--frames", type=int, required=True, help="frames per batch")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    idx = [int(i) for i in args.indices.split(",")]
    batches = [idx[k : k + args.frames] for k in range(0, len(idx), args.frames)]
    t = time.perf_counter()
    step, make_batch, model, sizes = RUNS[args.kind](args.name, args.data, batches, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the set-up's GPU work is not timed
    setup = time.perf_counter() - t
    seconds = time_steps(step, make_batch, len(batches), args.reps, args.warmup, device)
    report(
        kind=args.kind,
        name=args.name,
        params=trainable(model),
        seconds=seconds,
        atoms=[a for a, _ in sizes],
        edges=[e for _, e in sizes],
        setup_seconds=round(setup, 1),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    )


if __name__ == "__main__":
    main()
