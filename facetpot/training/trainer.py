"""The training loop: ``facet train CONFIG.yaml [--resume]``.

Order of work: run folder (``run_dir.py``) -> data: caches and split (``data_prep.py``) -> model,
new or fine-tuned, with statistics of the data (``model_setup.py``, ``statistics.py``), or the
checkpoint's -> AdamW + schedule + EMA -> steps over packed batches (``loss_backward``,
``distributed.py``) -> validation with EMA weights -> atomic checkpoints (``checkpoint.pt``), model
files ``best.pt`` / ``last.pt``, logs ``metrics.csv`` and TensorBoard, a learning curve. Under
torchrun every rank trains on its share of the batches and gradients are summed.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from ..data.batching import BudgetBatchSampler, GraphDataset, collate
from ..data.cache import FrameCache
from ..inference.model_source import DTYPES
from ..io.model_file import save_model
from ..plots import learning_curve
from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .data_prep import prepare_data
from .distributed import log, loss_backward
from .ema import ParameterEMA
from .finetune_energies import residual_atomic_energies
from .loss import ErrorMetrics, predict
from .model_setup import build_or_load_model, check_species, freeze, model_from_checkpoint
from .replay import prepare_replay
from .run_dir import CHECKPOINT, MetricsLog, prepare_run_dir, write_json
from .schedule import LRSchedule
from .statistics import fit_statistics


def select_device(name: str) -> torch.device:
    """``training.device`` (auto, cpu, cuda) -> this rank's device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("training.device is cuda but torch sees no CUDA device")
        name = f"cuda:{distributed.local_rank()}"
    return torch.device(name)


def warmup_steps(asked: Optional[int], total: int) -> int:
    """``training.warmup_steps``, or by default 10% of the run's ``total`` steps (at most 100); a warm-up
    asked for that takes more than half the run is kept, with a warning (the rate then never anneals fully)."""
    if asked is None:
        return min(100, max(1, total // 10))
    if asked > total // 2:
        log(
            f"warning: training.warmup_steps={asked} is more than half of this run's {total} steps: the "
            "learning rate reaches its peak late and the cosine barely anneals (leave warmup_steps out for 10%)"
        )
    return int(asked)


class Trainer:
    def __init__(self, cfg: Dict[str, Any], resume: bool = False, overwrite: bool = False):
        self.cfg = cfg
        tc = cfg["training"]
        self.out = prepare_run_dir(Path(tc["output"]), resume, overwrite)
        distributed.init(tc["device"])
        if tc["threads"]:
            torch.set_num_threads(int(tc["threads"]))
        self.device = select_device(tc["device"])
        self.dtype = DTYPES[tc["dtype"]]
        torch.manual_seed(tc["seed"])
        self.data = prepare_data(cfg["data"], self.out, tc["seed"])
        ckpt = load_checkpoint(self.out / CHECKPOINT) if resume else None  # restores the RNG states
        self._set_up_model(ckpt)
        self.replay = prepare_replay(
            self.model,
            cfg,
            self.stats.get("base_species", self.model.species),
            self.data.train.species,
            self.out,
            resume,
        )
        self._set_up_optimisation()
        self._set_up_progress(ckpt)
        self.metrics_log = MetricsLog(self.out, tc["tensorboard"]) if distributed.rank() == 0 else None

    # ------------------------------------------------------------------ set-up
    def _statistics(self, cutoff: float) -> Dict[str, Any]:
        stats = fit_statistics(
            self.data.train, self.data.train_idx, cutoff, self.cfg["training"]["seed"], self.cfg["data"]["stats_frames"]
        )
        log(
            f"statistics: avg neighbours {stats['avg_num_neighbors']:.2f}, force RMS "
            f"{stats['force_rms']:.4f} eV/Å, energy residual RMS {1e3 * stats['energy_per_atom_rms']:.2f} meV/atom"
        )
        return stats

    def _set_up_model(self, ckpt: Optional[Dict[str, Any]]) -> None:
        species = self.data.train.species
        if ckpt is not None:
            self.model, self.stats = model_from_checkpoint(ckpt), ckpt["statistics"]
        else:
            self.model, self.stats = build_or_load_model(
                self.cfg,
                species,
                self._statistics,
                lambda model: residual_atomic_energies(model, self.data.train, self.data.train_idx),
            )
        check_species(self.model, species)
        self.model = self.model.to(self.device, self.dtype)
        freeze(self.model, self.cfg["finetune"]["freeze"])
        distributed.broadcast_parameters(self.model)  # identical starting weights on every rank

    def _set_up_optimisation(self) -> None:
        tc = self.cfg["training"]
        params = [p for p in self.model.parameters() if p.requires_grad]
        if tc["optimizer"] == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=tc["lr"], weight_decay=tc["weight_decay"])
        else:
            self.optimizer = torch.optim.Adam(params, lr=tc["lr"], weight_decay=0)
        n_data = len(self.data.train_idx)
        per_epoch = self.cfg["finetune"]["replay"]["per_epoch"] or n_data
        self.sampler = BudgetBatchSampler(
            np.concatenate([c.num_atoms()[i] for c, i in self._train_parts()]),
            tc["max_atoms_per_batch"],
            tc["max_frames_per_batch"],
            shuffle=True,
            seed=tc["seed"],
            rank=distributed.rank(),
            world_size=distributed.world_size(),
            pool_start=n_data,
            pool_per_epoch=per_epoch if self.replay else 0,
        )
        self.steps_per_epoch = len(self.sampler.all_batches(0))
        total = tc["epochs"] * self.steps_per_epoch
        if tc["max_steps"]:
            total = min(total, int(tc["max_steps"]))
        self.total_steps = total
        warmup = warmup_steps(tc["warmup_steps"], total)
        self.schedule = LRSchedule(
            self.optimizer,
            tc["schedule"],
            tc["lr"],
            total,
            warmup,
            tc["min_lr_ratio"],
            tc["plateau_patience"],
            tc["plateau_factor"],
        )
        self.ema = ParameterEMA(self.model, tc["ema_decay"])
        self.valid_every = int(tc["valid_every"] or self.steps_per_epoch)
        self.checkpoint_every = int(tc["checkpoint_every"] or self.valid_every)

    def _set_up_progress(self, ckpt: Optional[Dict[str, Any]]) -> None:
        """Step counters, best score and elapsed time: zero, or the checkpoint's with its optimizer,
        schedule and EMA states."""
        self.step = self.epoch = self.batch_in_epoch = 0
        self.best = math.inf
        self._elapsed = 0.0
        self._in_stage_two = False
        if ckpt is None:
            if distributed.rank() == 0:
                write_json(self.out / "statistics.json", self.stats)
            return
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        self.ema.load_state_dict(ckpt["ema"])
        self.step, self.epoch, self.batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
        self.best = ckpt["best"]
        self._elapsed = float(ckpt.get("elapsed", 0.0))  # the wall-time budget spans interruptions
        self._in_stage_two = bool(ckpt.get("stage_two", False))
        log(
            f"resumed from {self.out / CHECKPOINT} at step {self.step} (epoch {self.epoch}, "
            f"batch {self.batch_in_epoch})"
        )

    def _train_parts(self) -> List[Tuple[FrameCache, np.ndarray]]:
        """(cache, indices) of the training frames: the data's, then the replay set's."""
        parts = [(self.data.train, self.data.train_idx)]
        if self.replay is not None:
            parts.append((self.replay.cache, self.replay.train_idx))
        return parts

    def _loader(self, parts: Sequence[Tuple[FrameCache, np.ndarray]], sampler):
        ds = torch.utils.data.ConcatDataset([GraphDataset(c.path, i, self.model.cutoff) for c, i in parts])
        nw = int(self.cfg["training"]["num_workers"])
        return torch.utils.data.DataLoader(
            ds, batch_sampler=sampler, collate_fn=collate, num_workers=nw, persistent_workers=False
        )

    # ------------------------------------------------------------------ steps
    def train_step(self, batch) -> float:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=False)
        value = loss_backward(self.model, batch, self.loss_config())
        if not all(torch.isfinite(p.grad).all() for p in self.model.parameters() if p.requires_grad):
            raise FloatingPointError(
                f"non-finite gradient at step {self.step}: check the data (rejected.tsv) or lower training.lr"
            )
        clip = float(self.cfg["training"]["grad_clip"])
        if clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], clip)
        self.optimizer.step()
        budget = self.cfg["training"]["max_time_minutes"]
        self.schedule.step(self._elapsed / (60.0 * float(budget)) if budget else 0.0)
        self.ema.update(self.model)
        return value

    def loss_config(self) -> Dict[str, Any]:
        """The loss section, with ``loss.stage_two``'s weights once the run has passed its start."""
        loss, two = self.cfg["loss"], self.cfg["loss"]["stage_two"]
        if two is None or (not self._in_stage_two and self.schedule.progress() < two["start"]):
            return loss  # once begun, stage two stays (a resume with a longer budget does not go back)
        if not self._in_stage_two:  # best.pt is the best model of stage two from here on
            self._in_stage_two, self.best = True, math.inf
            log(
                f"step {self.step + 1}: loss stage two (energy {two['energy_weight']:g}, forces {two['forces_weight']:g}, "
                f"stress {two['stress_weight']:g})"
            )
        return {**loss, **{k: two[k] for k in ("energy_weight", "forces_weight", "stress_weight")}}

    def validate(self) -> Dict[str, Dict[str, float]]:
        """Errors of the EMA weights on the validation frames, overall ("all") and per config_type; with
        replay, on the held-out replay frames as "replay" (not part of "all")."""
        self.ema.swap(self.model)
        try:
            metrics = self._errors(self.data.valid, self.data.valid_idx)
            if self.replay is not None and len(self.replay.valid_idx):
                metrics["replay"] = self._errors(self.replay.cache, self.replay.valid_idx)["all"]
        finally:
            self.ema.swap(self.model)
        return metrics

    def _errors(self, cache: FrameCache, indices: np.ndarray) -> Dict[str, Dict[str, float]]:
        tc = self.cfg["training"]
        self.model.eval()
        metrics = ErrorMetrics()
        sampler = BudgetBatchSampler(
            cache.num_atoms()[indices], tc["max_atoms_per_batch"], tc["max_frames_per_batch"], shuffle=False
        )
        for batch in self._loader([(cache, indices)], sampler):
            batch = batch.to(self.device, self.dtype)
            pred = predict(self.model, batch, create_graph=False)
            metrics.update({k: v.detach() for k, v in pred.items()}, batch)
        return metrics.result()

    # ------------------------------------------------------------------ files
    def _state(self) -> Dict[str, Any]:
        return {
            "model_config": self.model.config,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "ema": self.ema.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best": self.best,
            "statistics": self.stats,
            "elapsed": self._elapsed,
            "stage_two": self._in_stage_two,
            "config": json.loads(json.dumps(self.cfg, default=str)),
        }

    def save_checkpoint(self) -> None:
        if distributed.rank() == 0:
            save_checkpoint(self.out / CHECKPOINT, self._state())

    def save_model(self, name: str, metrics=None) -> None:
        """The EMA weights as a model file ``OUTPUT/name`` (rank 0)."""
        if distributed.rank() != 0:
            return
        self.ema.swap(self.model)
        try:
            save_model(self.model, self.out / name, metadata={"trained_steps": self.step, "valid": metrics or {}})
        finally:
            self.ema.swap(self.model)

    def _log_row(self, row: Dict[str, Any]) -> None:
        if self.metrics_log is not None:
            self.metrics_log.write(row)

    # ------------------------------------------------------------------ loop
    def _validate_and_log(self, row: Dict[str, Any], losses: List[float], progress) -> Dict[str, Any]:
        """Validation after a step: metrics row, plateau schedule, ``best.pt``."""
        metrics = self.validate()
        allm = metrics.get("all", {})
        row.update(
            train_loss=float(np.mean(losses)) if losses else "",
            valid_energy_mae_meV_per_atom=1e3 * allm.get("energy_per_atom_mae", math.nan),
            valid_forces_mae=allm.get("forces_mae", ""),
            valid_stress_mae=allm.get("stress_mae", ""),
        )
        replay = metrics.get("replay", {})
        row.update(
            valid_replay_energy_mae_meV_per_atom=1e3 * replay["energy_per_atom_mae"] if replay else "",
            valid_replay_forces_mae=replay.get("forces_mae", ""),
            valid_replay_stress_mae=replay.get("stress_mae", ""),
        )
        score = allm.get("energy_per_atom_mae", 0.0) + allm.get("forces_mae", 0.0)
        if self.cfg["training"]["schedule"] == "plateau":
            self.schedule.report(score)
        if score < self.best:
            self.best = score
            self.save_model("best.pt", metrics)
        self._log_row(row)
        if progress is None:
            log(
                f"step {self.step}/{self.total_steps} epoch {self.epoch} lr {row['lr']:.2e} "
                f"loss {row['train_loss']:.4g} | valid E {row['valid_energy_mae_meV_per_atom']:.2f} "
                f"meV/atom F {allm.get('forces_mae', math.nan):.4f} eV/Å"
                + (f" | replay F {replay.get('forces_mae', math.nan):.4f} eV/Å" if replay else "")
            )
        return metrics

    def run(self) -> Dict[str, Any]:
        tc = self.cfg["training"]
        t0 = time.time() - self._elapsed
        losses: List[float] = []
        last_metrics: Dict[str, Any] = {}
        progress = None
        if distributed.rank() == 0 and sys.stderr.isatty():
            progress = tqdm(total=self.total_steps, initial=self.step, unit="step", file=sys.stderr)
        while self.step < self.total_steps:
            self.sampler.set_epoch(self.epoch, skip=self.batch_in_epoch)
            for batch in self._loader(self._train_parts(), self.sampler):
                batch = batch.to(self.device, self.dtype)
                self._elapsed = distributed.broadcast_value(time.time() - t0, self.device)  # rank 0's clock
                losses.append(self.train_step(batch))
                self.step += 1
                self.batch_in_epoch += 1
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{losses[-1]:.4g}")
                row = {"step": self.step, "epoch": self.epoch, "lr": self.schedule.lr(), "seconds": time.time() - t0}
                out_of_time = bool(tc["max_time_minutes"]) and time.time() - t0 > 60 * float(tc["max_time_minutes"])
                out_of_time = distributed.broadcast_flag(out_of_time, self.device)
                if self.step % self.valid_every == 0 or self.step == self.total_steps or out_of_time:
                    last_metrics = self._validate_and_log(row, losses, progress)
                    losses = []
                elif self.step % int(tc["log_every"]) == 0 and progress is None:
                    log(f"step {self.step}/{self.total_steps} loss {np.mean(losses[-int(tc['log_every']) :]):.4g}")
                if self.step % self.checkpoint_every == 0 or self.step == self.total_steps or out_of_time:
                    self.save_checkpoint()
                if out_of_time:
                    log(f"stopping at step {self.step}: training.max_time_minutes={tc['max_time_minutes']} reached")
                    self.total_steps = self.step
                if self.step >= self.total_steps:
                    break
            else:
                self.epoch += 1
                self.batch_in_epoch = 0
                continue
            break
        if progress is not None:
            progress.close()
        self._elapsed = time.time() - t0  # the final checkpoint holds the whole run's time
        self.save_model("last.pt", last_metrics)
        self.save_checkpoint()
        if distributed.rank() == 0:
            write_json(self.out / "final_metrics.json", last_metrics)
            learning_curve(self.out)
        log(f"done: {self.step} steps in {time.time() - t0:.1f} s; models in {self.out}")
        return last_metrics
