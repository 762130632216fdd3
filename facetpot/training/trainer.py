"""The training loop: ``facet train CONFIG.yaml [--resume]``.

Order of work: data -> cache (converted once) -> split -> statistics (E0, n_avg, scale) -> model
(new or fine-tuned) -> AdamW + schedule + EMA -> steps over packed batches -> validation with EMA
weights -> atomic checkpoints (``checkpoint.pt``), model files ``best.pt`` / ``last.pt``, logs
``metrics.csv`` and TensorBoard. Under torchrun every rank trains on its share of the batches and
gradients are summed (see ``loss.py`` for why the sum is exact).
"""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import torch

from ..data.batching import BudgetBatchSampler, GraphDataset, collate
from ..data.cache import FrameCache, convert
from ..data.readers import expand_paths, iter_frames
from ..model_file import save_model
from ..properties import compute_properties
from .checkpoint import load_checkpoint, save_checkpoint
from .ema import ParameterEMA
from .loss import ErrorMetrics, combine, loss_terms
from .schedule import LRSchedule
from .statistics import average_neighbors, fit_atomic_energies, residual_rms


#: test hook: SIGKILL this process right after the given step (set by the resume test only)
_KILL_AT_STEP = int(os.environ.get("FACETPOT_TEST_KILL_AT_STEP", "0"))


def log(msg: str) -> None:
    if _rank() == 0:
        print(msg, file=sys.stderr, flush=True)


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def _world() -> int:
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def _sources(paths) -> List[str]:
    return [f"{p.resolve()}|{p.stat().st_size}|{int(p.stat().st_mtime)}" for p in expand_paths(paths)]


def ensure_cache(paths, cache_dir: Path, data_cfg: Dict[str, Any], species=None) -> FrameCache:
    """Convert ``paths`` into ``cache_dir`` unless a complete cache of the same files is there."""
    sources = _sources(paths)
    manifest = cache_dir / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("sources") == sources:
        log(f"using cache {cache_dir}")
    elif _rank() == 0:
        log(f"converting {len(sources)} file(s) into {cache_dir}")
        frames = iter_frames(paths, keys=data_cfg["keys"], mptrj_energy=data_cfg["mptrj_energy"])
        convert(frames, cache_dir, species=species, sources=sources)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    cache = FrameCache(cache_dir)
    if len(cache) == 0:
        raise ValueError(f"no usable frames in {paths} (see {cache_dir / 'rejected.tsv'})")
    return cache


def split_indices(cache: FrameCache, fraction: float, by: str, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    n = len(cache)
    groups = cache.groups()
    if by == "auto":
        by = "group" if len(np.unique(groups)) < n else "frame"
    rng = np.random.default_rng(seed)
    if by == "frame":
        perm = rng.permutation(n)
        n_valid = int(round(fraction * n))
        return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])
    uniq = rng.permutation(np.unique(groups))
    n_valid = int(round(fraction * len(uniq)))
    valid_groups = set(uniq[:n_valid].tolist())
    is_valid = np.array([g in valid_groups for g in groups])
    return np.where(~is_valid)[0], np.where(is_valid)[0]


def build_or_load_model(cfg, species: List[int], stats_fn) -> torch.nn.Module:
    from ..model_file import resolve_model
    from ..model import build_model

    ft = cfg["finetune"]
    if ft["from"]:
        base = resolve_model(ft["from"], device="cpu", dtype="float64")
        missing = sorted(set(species) - set(base.species))
        if missing:
            model = _extend_species(base, missing)
            log(f"fine-tuning {ft['from']}: added element(s) {missing} the base model lacks")
        else:
            model = base
        stats = stats_fn(model.cutoff)
        if ft["refit_atomic_energies"] or missing:
            model.set_atomic_energies(stats["atomic_energies"])
        return model
    model_cfg = dict(cfg["model"])
    model_cfg.setdefault("species", species)
    from ..model import DEFAULT_CONFIG

    stats = stats_fn(float(model_cfg.get("cutoff", DEFAULT_CONFIG["cutoff"])))
    model_cfg.setdefault("avg_num_neighbors", stats["avg_num_neighbors"])
    model = build_model(**model_cfg)
    if "atomic_energies" not in cfg["model"]:
        model.set_atomic_energies({z: stats["atomic_energies"].get(z, 0.0) for z in model.species})
    if "scale" not in cfg["model"] and stats["scale"] > 0:
        model.set_scale({z: stats["scale"] for z in model.species})
    return model


def _extend_species(base, extra: List[int]):
    """A copy of ``base`` covering ``extra`` elements too: new embedding rows, all else copied."""
    from ..model import FacetModel

    cfg = dict(base.config)
    cfg["species"] = sorted(set(base.species) | set(extra))
    for key in ("atomic_energies", "scale"):
        if isinstance(cfg[key], dict):
            fill = 0.0 if key == "atomic_energies" else float(np.mean(list(cfg[key].values())))
            cfg[key] = {**{z: fill for z in extra}, **cfg[key]}
    model = FacetModel(**cfg).double()
    state = base.state_dict()
    new_state = model.state_dict()
    for k, v in state.items():
        if k == "embedding.weight":
            for row, z in enumerate(base.species):
                new_state[k][model.species.index(z)] = v[row]
        else:
            new_state[k] = v
    model.load_state_dict(new_state)
    return model


def predict(model, batch, create_graph: bool):
    """Energies, and forces / stress where the batch has labels for them."""
    has_f = bool((~torch.isnan(batch.forces)).any())
    has_s = bool((~torch.isnan(batch.stress)).any())
    with torch.enable_grad():
        return compute_properties(model, batch.graph, forces=has_f, stress=has_s, create_graph=create_graph)


def loss_backward(model, batch, loss_cfg) -> float:
    """Loss of this rank's batch normalised by the counts of all ranks; gradients accumulated into
    ``.grad`` and summed over ranks, so every rank holds the gradient of the union of the batches.
    Returns the global loss."""
    pred = predict(model, batch, create_graph=True)
    terms = loss_terms(pred, batch, loss_cfg)
    ref = pred["energy"]
    counts = {f"{n}_count": terms[f"{n}_count"].detach().clone() if f"{n}_count" in terms
              else torch.zeros((), dtype=ref.dtype, device=ref.device) for n in ("energy", "forces", "stress")}
    if _world() > 1:
        for v in counts.values():
            torch.distributed.all_reduce(v)
    loss = combine(terms, counts, loss_cfg)
    if torch.is_tensor(loss):
        loss.backward()
    for p in model.parameters():  # parameters the batch did not reach get a zero gradient
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)
    value = torch.tensor([float(loss.detach()) if torch.is_tensor(loss) else 0.0], dtype=torch.float64,
                         device=ref.device)
    if _world() > 1:
        for p in model.parameters():
            if p.requires_grad:
                torch.distributed.all_reduce(p.grad)
        torch.distributed.all_reduce(value)
    return float(value)


class Trainer:
    def __init__(self, cfg: Dict[str, Any], resume: bool = False, overwrite: bool = False):
        self.cfg = cfg
        tc = cfg["training"]
        self.out = Path(tc["output"])
        if not resume and not overwrite and (self.out / "checkpoint.pt").exists():
            raise ValueError(f"{self.out} already holds a training run: continue it with --resume, or choose "
                             "another training.output (--overwrite replaces it)")
        if overwrite and not resume:
            for name in ("metrics.csv", "checkpoint.pt", "best.pt", "last.pt", "final_metrics.json"):
                (self.out / name).unlink(missing_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        self._init_distributed()
        if tc["threads"]:
            torch.set_num_threads(int(tc["threads"]))
        dev = tc["device"]
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev == "cuda":
            if not torch.cuda.is_available():
                raise ValueError("training.device is cuda but torch sees no CUDA device")
            dev = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        self.device = torch.device(dev)
        self.dtype = getattr(torch, tc["dtype"])
        torch.manual_seed(tc["seed"])

        dc = cfg["data"]
        cache_root = Path(dc["cache"]) if dc["cache"] else self.out / "cache"
        self.train_cache = ensure_cache(dc["train"], cache_root / "train", dc)
        if dc["valid"]:
            self.valid_cache = ensure_cache(dc["valid"], cache_root / "valid", dc)
            self.train_idx = np.arange(len(self.train_cache))
            self.valid_idx = np.arange(len(self.valid_cache))
        else:
            self.valid_cache = self.train_cache
            self.train_idx, self.valid_idx = split_indices(self.train_cache, dc["valid_fraction"], dc["split_by"],
                                                           tc["seed"])
        log(f"{len(self.train_idx):,} training frames, {len(self.valid_idx):,} validation frames")
        species = sorted(int(z) for z in self.train_cache.manifest["species"])

        ckpt = None
        if resume:
            ckpt = load_checkpoint(self.out / "checkpoint.pt")
            from ..model import FacetModel

            dtype = next(iter(ckpt["model"].values())).dtype
            self.model = FacetModel(**ckpt["model_config"]).to(dtype=dtype)  # no rounding on load
            self.model.load_state_dict(ckpt["model"])
            self.stats = ckpt["statistics"]
        else:
            self.model = build_or_load_model(cfg, species, self._statistics)
        unknown = sorted(set(species) - set(self.model.species))
        if unknown:
            raise ValueError(f"training data has element(s) Z={unknown} that the model does not cover; "
                             "add them to model.species (or fine-tune, which adds them)")
        self.model = self.model.to(self.device, self.dtype)
        for name, p in self.model.named_parameters():
            if any(name.startswith(prefix) for prefix in cfg["finetune"]["freeze"]):
                p.requires_grad_(False)
        if _world() > 1:  # identical starting weights on every rank
            for p in self.model.parameters():
                torch.distributed.broadcast(p.data, 0)
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt_cls = torch.optim.AdamW if tc["optimizer"] == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls(params, lr=tc["lr"], weight_decay=tc["weight_decay"] if tc["optimizer"] == "adamw" else 0)
        self.sampler = BudgetBatchSampler(self.train_cache.num_atoms()[self.train_idx], tc["max_atoms_per_batch"],
                                          tc["max_frames_per_batch"], shuffle=True, seed=tc["seed"],
                                          rank=_rank(), world_size=_world())
        self.steps_per_epoch = len(self.sampler.all_batches(0))
        total = tc["epochs"] * self.steps_per_epoch
        if tc["max_steps"]:
            total = min(total, int(tc["max_steps"]))
        self.total_steps = total
        self.schedule = LRSchedule(self.optimizer, tc["schedule"], tc["lr"], total, tc["warmup_steps"],
                                   tc["min_lr_ratio"], tc["plateau_patience"], tc["plateau_factor"])
        self.ema = ParameterEMA(self.model, tc["ema_decay"])
        self.valid_every = int(tc["valid_every"] or self.steps_per_epoch)
        self.checkpoint_every = int(tc["checkpoint_every"] or self.valid_every)
        self.step = self.epoch = self.batch_in_epoch = 0
        self.best = math.inf
        self._elapsed = 0.0
        if ckpt is not None:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.schedule.load_state_dict(ckpt["schedule"])
            self.ema.load_state_dict(ckpt["ema"])
            self.step, self.epoch, self.batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
            self.best = ckpt["best"]
            self._elapsed = float(ckpt.get("elapsed", 0.0))  # the wall-time budget spans interruptions
            log(f"resumed from {self.out / 'checkpoint.pt'} at step {self.step} (epoch {self.epoch}, "
                f"batch {self.batch_in_epoch})")
        else:
            with open(self.out / "statistics.json", "w") as f:
                json.dump(self.stats, f, indent=1)
        self.writer = self._tensorboard() if tc["tensorboard"] and _rank() == 0 else None

    # ------------------------------------------------------------------ set-up helpers
    def _init_distributed(self) -> None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and self.cfg["training"]["device"] != "cpu" else "gloo"
            torch.distributed.init_process_group(backend)
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))

    def _statistics(self, cutoff: float) -> Dict[str, Any]:
        species = sorted(int(z) for z in self.train_cache.manifest["species"])
        e0 = fit_atomic_energies(self.train_cache, self.train_idx, species)
        rng = np.random.default_rng(self.cfg["training"]["seed"])
        n = min(len(self.train_idx), int(self.cfg["data"]["stats_frames"]))
        sample = rng.choice(self.train_idx, size=n, replace=False)
        rms = residual_rms(self.train_cache, sample, e0)
        self.stats = {
            "atomic_energies": e0,
            "avg_num_neighbors": average_neighbors(self.train_cache, sample, cutoff),
            "scale": rms["force_rms"] or rms["energy_per_atom_rms"],
            **rms,
        }
        log(f"statistics: avg neighbours {self.stats['avg_num_neighbors']:.2f}, force RMS "
            f"{rms['force_rms']:.4f} eV/Å, energy residual RMS {1e3 * rms['energy_per_atom_rms']:.2f} meV/atom")
        return self.stats

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log("TensorBoard not installed (pip install tensorboard): logging to metrics.csv only")
            return None
        return SummaryWriter(str(self.out / "tensorboard"))

    def _loader(self, cache, indices, sampler):
        ds = GraphDataset(cache.path, indices, self.model.cutoff)
        nw = int(self.cfg["training"]["num_workers"])
        return torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=nw,
                                           persistent_workers=False)

    # ------------------------------------------------------------------ steps
    def _predict(self, batch, create_graph: bool):
        return predict(self.model, batch, create_graph)

    def train_step(self, batch) -> float:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=False)
        value = loss_backward(self.model, batch, self.cfg["loss"])
        if not all(torch.isfinite(p.grad).all() for p in self.model.parameters() if p.requires_grad):
            raise FloatingPointError(f"non-finite gradient at step {self.step}: check the data "
                                     "(rejected.tsv) or lower training.lr")
        clip = float(self.cfg["training"]["grad_clip"])
        if clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], clip)
        self.optimizer.step()
        budget = self.cfg["training"]["max_time_minutes"]
        self.schedule.step(self._elapsed / (60.0 * float(budget)) if budget else 0.0)
        self.ema.update(self.model)
        return value

    def validate(self) -> Dict[str, Dict[str, float]]:
        self.model.eval()
        metrics = ErrorMetrics()
        sampler = BudgetBatchSampler(self.valid_cache.num_atoms()[self.valid_idx],
                                     self.cfg["training"]["max_atoms_per_batch"],
                                     self.cfg["training"]["max_frames_per_batch"], shuffle=False)
        self.ema.swap(self.model)
        try:
            for batch in self._loader(self.valid_cache, self.valid_idx, sampler):
                batch = batch.to(self.device, self.dtype)
                pred = self._predict(batch, create_graph=False)
                metrics.update({k: v.detach() for k, v in pred.items()}, batch)
        finally:
            self.ema.swap(self.model)
        return metrics.result()

    # ------------------------------------------------------------------ files
    def _state(self) -> Dict[str, Any]:
        return {"model_config": self.model.config, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "ema": self.ema.state_dict(), "step": self.step, "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch, "best": self.best, "statistics": self.stats,
                "elapsed": self._elapsed,
                "config": json.loads(json.dumps(self.cfg, default=str))}

    def save_checkpoint(self) -> None:
        if _rank() == 0:
            save_checkpoint(self.out / "checkpoint.pt", self._state())

    def save_model(self, name: str, metrics=None) -> None:
        if _rank() != 0:
            return
        self.ema.swap(self.model)
        try:
            save_model(self.model, self.out / name, metadata={"trained_steps": self.step, "valid": metrics or {}})
        finally:
            self.ema.swap(self.model)

    def _log_row(self, row: Dict[str, Any]) -> None:
        if _rank() != 0:
            return
        path = self.out / "metrics.csv"
        new = not path.exists()
        fields = ["step", "epoch", "lr", "train_loss", "valid_energy_mae_meV_per_atom", "valid_forces_mae",
                  "valid_stress_mae", "seconds"]
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self.writer is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and v not in ("", None):
                    self.writer.add_scalar(k, float(v), row["step"])
            self.writer.flush()

    # ------------------------------------------------------------------ loop
    def run(self) -> Dict[str, Any]:
        tc = self.cfg["training"]
        t0 = time.time() - self._elapsed
        losses: List[float] = []
        last_metrics: Dict[str, Any] = {}
        progress = None
        if _rank() == 0 and sys.stderr.isatty():
            from tqdm import tqdm

            progress = tqdm(total=self.total_steps, initial=self.step, unit="step", file=sys.stderr)
        while self.step < self.total_steps:
            self.sampler.set_epoch(self.epoch, skip=self.batch_in_epoch)
            for batch in self._loader(self.train_cache, self.train_idx, self.sampler):
                batch = batch.to(self.device, self.dtype)
                self._elapsed = time.time() - t0
                losses.append(self.train_step(batch))
                self.step += 1
                self.batch_in_epoch += 1
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{losses[-1]:.4g}")
                row = {"step": self.step, "epoch": self.epoch, "lr": self.schedule.lr(), "seconds": time.time() - t0}
                out_of_time = bool(tc["max_time_minutes"]) and time.time() - t0 > 60 * float(tc["max_time_minutes"])
                if _world() > 1:  # rank 0's clock decides for everyone
                    flag = torch.tensor([float(out_of_time)], device=self.device)
                    torch.distributed.broadcast(flag, 0)
                    out_of_time = bool(flag.item())
                if self.step % self.valid_every == 0 or self.step == self.total_steps or out_of_time:
                    last_metrics = self.validate()
                    allm = last_metrics.get("all", {})
                    row.update(train_loss=float(np.mean(losses)) if losses else "",
                               valid_energy_mae_meV_per_atom=1e3 * allm.get("energy_per_atom_mae", math.nan),
                               valid_forces_mae=allm.get("forces_mae", ""), valid_stress_mae=allm.get("stress_mae", ""))
                    losses = []
                    score = allm.get("energy_per_atom_mae", 0.0) + allm.get("forces_mae", 0.0)
                    if tc["schedule"] == "plateau":
                        self.schedule.report(score)
                    if score < self.best:
                        self.best = score
                        self.save_model("best.pt", last_metrics)
                    self._log_row(row)
                    if progress is None:
                        log(f"step {self.step}/{self.total_steps} epoch {self.epoch} lr {row['lr']:.2e} "
                            f"loss {row['train_loss']:.4g} | valid E {row['valid_energy_mae_meV_per_atom']:.2f} "
                            f"meV/atom F {allm.get('forces_mae', math.nan):.4f} eV/Å")
                elif self.step % int(tc["log_every"]) == 0 and progress is None:
                    log(f"step {self.step}/{self.total_steps} loss {np.mean(losses[-int(tc['log_every']):]):.4g}")
                if self.step % self.checkpoint_every == 0 or self.step == self.total_steps or out_of_time:
                    self.save_checkpoint()
                if self.step == _KILL_AT_STEP:  # tests: die like a pre-empted job, mid-epoch
                    os.kill(os.getpid(), signal.SIGKILL)
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
        self.save_model("last.pt", last_metrics)
        self.save_checkpoint()
        if _rank() == 0:
            with open(self.out / "final_metrics.json", "w") as f:
                json.dump(last_metrics, f, indent=1)
            from ..evaluate import learning_curve

            learning_curve(self.out)
        log(f"done: {self.step} steps in {time.time() - t0:.1f} s; models in {self.out}")
        return last_metrics
