"""A peer's side of ``benchmarks/training_race.py``, run in that peer's own virtual environment (no facetpot there).

    python training_race_worker.py train --budget-seconds S --curve FILE mace|sevennet -- ARGS...
    python training_race_worker.py eval facet|mace|sevennet MODEL TEST.extxyz

``train`` runs the peer's own command-line entry point in this process (``mace_run_train``'s ``main`` with
ARGS, or ``sevenn``'s ``main`` with ARGS) under a wall-time budget that :class:`Budget` keeps the same way for
both peers, with no change to what they compute:

* the clock starts when the first training batch is fetched (the loader whose batch the first optimizer step
  takes), so reading data, building graphs, fitting E0s and building the model count for no one; facet's own
  ``training.max_time_minutes`` also starts at its first step;
* once the budget is spent, the training loader ends its epoch at the next batch: the peer validates and
  checkpoints as at any epoch end (facet likewise validates and saves when its budget runs out); the next
  training epoch raises :class:`BudgetReached`. MACE: caught around its ``train`` loop, so ``mace_run_train``
  goes on as after its last epoch (loads its best-validation checkpoint, saves ``<name>.model``). SevenNet:
  ends the run; ``checkpoint_best.pth`` (best validation) is the model;
* each validation during training is appended to ``--curve`` as a JSON line: ``seconds`` (training time when
  the validation started), ``forces_mae`` (eV/Å), ``energy_mae_meV_per_atom``.

At the end one ``RESULT`` line: ``steps`` (optimizer steps), ``seconds`` (training time at its last step),
``stopped`` ("budget", or "by itself" when the peer's own epochs or patience ended it first).

``eval`` prints one ``RESULT`` line: test-set errors of MODEL through its own ASE calculator in float32 (the
precision all three codes trained in): energy MAE per atom (meV/atom), force MAE per component (eV/Å), stress
MAE per Voigt component (GPa; None where the test frames carry no stress), frames, parameters of the torch
module behind the calculator, seconds.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report  # noqa: E402  (benchmarks/harness.py: standard library only)


class BudgetReached(Exception):
    """Raised at the start of the first training epoch after the wall-time budget was spent."""


class Budget:
    """The wall-time budget of one training run: a global optimizer pre-hook and a DataLoader iterator wrapper."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.t0 = None  # time.monotonic() when the first training batch was fetched
        self.steps = 0
        self.trained = 0.0  # training time when the training loader last asked for a batch (or ran out)
        self.active = True  # False once BudgetReached was raised: later loaders (final evaluations) run freely
        self.train_loaders = set()  # ids of the loaders whose batches the optimizer stepped on
        self.current = (None, 0.0)  # (loader id, when its iteration began) of the last batch yielded

    def elapsed(self) -> float:
        return 0.0 if self.t0 is None else time.monotonic() - self.t0

    def spent(self) -> bool:
        return self.active and self.t0 is not None and self.elapsed() >= self.seconds

    def on_step(self, optimizer, args, kwargs) -> None:
        """Global optimizer step pre-hook: the first step starts the clock; every step marks its loader."""
        if not self.active:
            return
        loader, began = self.current
        if self.t0 is None:
            self.t0 = began
        self.train_loaders.add(loader)
        self.steps += 1

    def iterate(self, loader, batches):
        """``batches`` (the loader's own iterator), ended early once the budget is spent if ``loader`` trains."""
        if id(loader) in self.train_loaders and self.spent():
            self.active = False
            raise BudgetReached(f"wall-time budget of {self.seconds:.0f} s spent after {self.steps} steps")
        began = time.monotonic()
        for batch in batches:
            if id(loader) in self.train_loaders:  # known after its first step
                self.trained = self.elapsed()
                if self.spent():
                    return
            self.current = (id(loader), began)
            yield batch
        if id(loader) in self.train_loaders:
            self.trained = self.elapsed()

    def install(self) -> None:
        register_optimizer_step_pre_hook(self.on_step)
        plain = torch.utils.data.DataLoader.__iter__
        budget = self

        def __iter__(loader):
            return budget.iterate(loader, plain(loader))

        torch.utils.data.DataLoader.__iter__ = __iter__


def append_curve(path: str, **row) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def train_mace(argv, budget: Budget, curve: str) -> None:
    """``mace_run_train ARGS`` with the budget; validations timed through ``mace.tools.train.evaluate``."""
    import mace.tools
    from mace.cli import run_train

    loop = importlib.import_module("mace.tools.train")  # the module (mace.tools.train is also the function)
    evaluate, train = loop.evaluate, mace.tools.train

    def timed_evaluate(*args, **kwargs):
        seconds = budget.elapsed()
        loss, aux = evaluate(*args, **kwargs)
        if budget.t0 is not None and budget.active:  # not the "Initial" validation before training
            append_curve(
                curve,
                seconds=seconds,
                forces_mae=float(aux["mae_f"]),
                energy_mae_meV_per_atom=1e3 * float(aux["mae_e_per_atom"]),
            )
        return loss, aux

    def train_within_budget(*args, **kwargs):
        try:
            train(*args, **kwargs)
        except BudgetReached as stop:
            logging.info(f"training_race: {stop}; going on as after the last epoch")

    loop.evaluate = timed_evaluate
    mace.tools.train = train_within_budget
    sys.argv = ["mace_run_train", *argv]
    run_train.main()


def train_sevennet(argv, budget: Budget, curve: str) -> None:
    """``sevenn ARGS`` with the budget; validations timed through ``Trainer.run_one_epoch``."""
    from sevenn.main import sevenn as cli
    from sevenn.train.trainer import Trainer

    one_epoch = Trainer.run_one_epoch

    def timed_epoch(self, loader, is_train=False, error_recorder=None, **kwargs):
        seconds = budget.elapsed()
        one_epoch(self, loader, is_train, error_recorder, **kwargs)
        if not is_train and error_recorder is not None and budget.t0 is not None and budget.active:
            errors = {k: v["value"] for k, v in error_recorder.get_current().items()}
            append_curve(
                curve,
                seconds=seconds,
                forces_mae=float(errors["Force_MAE"]),
                energy_mae_meV_per_atom=1e3 * float(errors["Energy_MAE"]),
            )

    Trainer.run_one_epoch = timed_epoch
    sys.argv = ["sevenn", *argv]
    try:
        cli.main()
    except BudgetReached as stop:
        print(f"training_race: {stop}; checkpoint_best.pth is the model", flush=True)


def train(peer: str, argv, seconds: float, curve: str) -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    budget = Budget(seconds)
    budget.install()
    Path(curve).unlink(missing_ok=True)
    (train_mace if peer == "mace" else train_sevennet)(argv, budget, curve)
    report(steps=budget.steps, seconds=round(budget.trained, 1), stopped="by itself" if budget.active else "budget")


def calculator(kind: str, model: str):
    """The model's own ASE calculator, float32, on the CPU."""
    if kind == "facet":
        import facetpot

        return facetpot.FacetCalculator(model, dtype="float32", min_distance=0.0)  # refuse no test frame
    if kind == "mace":
        from mace.calculators import MACECalculator

        return MACECalculator(model_paths=model, device="cpu", default_dtype="float32")
    from sevenn.calculator import SevenNetCalculator

    return SevenNetCalculator(model, device="cpu")  # SevenNet runs float32 only


def evaluate(kind: str, model: str, test: str) -> None:
    from ase.io import read
    from ase.units import GPa

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    t = time.perf_counter()
    calc = calculator(kind, model)
    module = calc.models[0] if kind == "mace" else calc.model
    energy, forces, stress = [], [], []
    for atoms in read(test, ":"):
        has_stress = "stress" in atoms.calc.results
        ref = (atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress() if has_stress else None)
        atoms = atoms.copy()
        atoms.calc = calc
        energy.append(abs(atoms.get_potential_energy() - ref[0]) / len(atoms))
        forces.append(np.abs(atoms.get_forces() - ref[1]).ravel())
        if has_stress:
            stress.append(np.abs(atoms.get_stress() - ref[2]))
    report(
        frames=len(energy),
        energy_mae_meV_per_atom=1e3 * float(np.mean(energy)),
        forces_mae=float(np.mean(np.concatenate(forces))),
        stress_mae_GPa=float(np.mean(stress)) / GPa if stress else None,
        params=sum(p.numel() for p in module.parameters()),
        seconds=round(time.perf_counter() - t, 1),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    tr = sub.add_parser("train")
    tr.add_argument("peer", choices=["mace", "sevennet"])
    tr.add_argument("--budget-seconds", type=float, required=True)
    tr.add_argument("--curve", required=True, help="JSON lines, one per validation")
    tr.add_argument("args", nargs=argparse.REMAINDER, help="-- then the peer's own arguments")
    ev = sub.add_parser("eval")
    ev.add_argument("kind", choices=["facet", "mace", "sevennet"])
    ev.add_argument("model")
    ev.add_argument("test")
    args = ap.parse_args()
    if args.mode == "eval":
        evaluate(args.kind, args.model, args.test)
        return
    peer_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    train(args.peer, peer_args, args.budget_seconds, args.curve)


if __name__ == "__main__":
    main()
