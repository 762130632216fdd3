"""The data of a training run: input files -> on-disk caches (converted once) -> train/valid split.

A cache is reused while its manifest's ``sources`` match the input files (path, size, mtime:
``facetpot.data.cache.source_fingerprints``); under torchrun rank 0 converts and the others wait.
Validation frames come from ``data.valid`` files, or from a seeded split of the training cache:
by group (MPtrj trajectories never straddle the split) or by frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from ..data.cache import FrameCache, cache_matches, convert, source_fingerprints
from ..data.readers import iter_frames
from . import distributed
from .distributed import log


@dataclass
class TrainingData:
    """Training frames ``train[train_idx]``, validation frames ``valid[valid_idx]``."""

    train: FrameCache
    valid: FrameCache
    train_idx: np.ndarray
    valid_idx: np.ndarray


def ensure_cache(paths, cache_dir: Path, data_cfg: Dict[str, Any], species=None) -> FrameCache:
    """Convert ``paths`` into ``cache_dir`` unless a complete cache of the same files is there."""
    sources = source_fingerprints(paths)
    if cache_matches(cache_dir, sources):
        log(f"using cache {cache_dir}")
    elif distributed.rank() == 0:
        log(f"converting {len(sources)} file(s) into {cache_dir}")
        frames = iter_frames(paths, keys=data_cfg["keys"], mptrj_energy=data_cfg["mptrj_energy"])
        convert(frames, cache_dir, species=species, sources=sources)
    distributed.barrier()
    cache = FrameCache(cache_dir)
    if len(cache) == 0:
        raise ValueError(f"no usable frames in {paths} (see {cache_dir / 'rejected.tsv'})")
    return cache


def split_indices(cache: FrameCache, fraction: float, by: str, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """(train, valid) frame indices: ``fraction`` of the frames (``by`` "frame") or of the groups
    (``by`` "group"; "auto": group when some group holds several frames) for validation."""
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


def cache_root(data_cfg: Dict[str, Any], output: Path) -> Path:
    """Where a run's caches go: ``data.cache``, default ``OUTPUT/cache``."""
    return Path(data_cfg["cache"]) if data_cfg["cache"] else output / "cache"


def prepare_data(data_cfg: Dict[str, Any], output: Path, seed: int) -> TrainingData:
    """The caches (:func:`cache_root`) and the split of a run."""
    root = cache_root(data_cfg, output)
    train = ensure_cache(data_cfg["train"], root / "train", data_cfg)
    if data_cfg["valid"]:
        valid = ensure_cache(data_cfg["valid"], root / "valid", data_cfg)
        data = TrainingData(train, valid, np.arange(len(train)), np.arange(len(valid)))
    else:
        train_idx, valid_idx = split_indices(train, data_cfg["valid_fraction"], data_cfg["split_by"], seed)
        data = TrainingData(train, train, train_idx, valid_idx)
    log(f"{len(data.train_idx):,} training frames, {len(data.valid_idx):,} validation frames")
    return data
