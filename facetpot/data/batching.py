"""Frames -> graphs with labels -> batches packed by an atom budget.

``pack_batches`` is the one packing rule: items in their given order, a batch closed when the
next item would take it past ``max_atoms`` atoms or ``max_frames`` items; it is lazy, so
``facet eval`` streams frames from files through it. ``BudgetBatchSampler`` applies it to shuffled
cache frames; its order is a pure function of (seed, epoch), so a resumed run sees the same
batches, and under DDP every rank takes every world_size-th batch of the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, TypeVar

import numpy as np
import torch

from ..structure.graph import AtomicGraph, batch_graphs, structure_graph
from .cache import FrameCache
from .frame import Frame

T = TypeVar("T")


@dataclass
class LabelledGraph:
    graph: AtomicGraph
    energy: torch.Tensor  # (B,)
    forces: torch.Tensor  # (N, 3), NaN where unknown
    stress: torch.Tensor  # (B, 3, 3), NaN where unknown
    weight: torch.Tensor  # (B,)
    num_atoms: torch.Tensor  # (B,)
    config_type: List[str]

    def to(self, device=None, dtype=None) -> "LabelledGraph":
        def f(t):
            return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device=device)

        return LabelledGraph(
            self.graph.to(device, dtype),
            f(self.energy),
            f(self.forces),
            f(self.stress),
            f(self.weight),
            self.num_atoms.to(device),
            self.config_type,
        )


def frame_to_graph(frame: Frame, cutoff: float, dtype=torch.float64) -> LabelledGraph:
    g = structure_graph(frame.numbers, frame.positions, frame.cell, frame.pbc, cutoff, dtype)
    n = len(frame.numbers)
    forces = frame.forces if frame.forces is not None else np.full((n, 3), np.nan)
    stress = frame.stress if frame.stress is not None else np.full((3, 3), np.nan)
    return LabelledGraph(
        graph=g,
        energy=torch.tensor([frame.energy], dtype=torch.float64),
        forces=torch.as_tensor(forces, dtype=torch.float64),
        stress=torch.as_tensor(stress, dtype=torch.float64).unsqueeze(0),
        weight=torch.tensor([frame.weight], dtype=torch.float64),
        num_atoms=torch.tensor([n]),
        config_type=[frame.config_type],
    )


def collate(items: Sequence[LabelledGraph]) -> LabelledGraph:
    return LabelledGraph(
        graph=batch_graphs([it.graph for it in items]),
        energy=torch.cat([it.energy for it in items]),
        forces=torch.cat([it.forces for it in items]),
        stress=torch.cat([it.stress for it in items]),
        weight=torch.cat([it.weight for it in items]),
        num_atoms=torch.cat([it.num_atoms for it in items]),
        config_type=[c for it in items for c in it.config_type],
    )


class GraphDataset(torch.utils.data.Dataset):
    """Frames of a cache (by index) as labelled graphs; opens the memory maps lazily in each worker."""

    def __init__(self, cache_path, indices: Sequence[int], cutoff: float):
        self.cache_path = str(cache_path)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.cutoff = float(cutoff)
        self._cache = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> LabelledGraph:
        if self._cache is None:
            self._cache = FrameCache(self.cache_path)
        return frame_to_graph(self._cache[int(self.indices[k])], self.cutoff)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = None  # memory maps are reopened, never pickled
        return state


def pack_batches(
    items: Iterable[T], size: Callable[[T], int], max_atoms: int, max_frames: Optional[int] = None
) -> Iterator[List[T]]:
    """Lists of consecutive ``items``, each of at most ``max_atoms`` atoms (``size(item)`` each) and
    ``max_frames`` items; an item larger than ``max_atoms`` gets a batch of its own. Lazy: one
    batch is held at a time."""
    cur: List[T] = []
    atoms = 0
    for item in items:
        n = size(item)
        if cur and (atoms + n > max_atoms or (max_frames is not None and len(cur) >= max_frames)):
            yield cur
            cur, atoms = [], 0
        cur.append(item)
        atoms += n
    if cur:
        yield cur


class BudgetBatchSampler(torch.utils.data.Sampler):
    """Lists of dataset positions, at most ``max_atoms`` atoms and ``max_frames`` frames each.

    With ``pool_start`` (and shuffling), the positions from ``pool_start`` on are a pool of which each epoch
    takes ``pool_per_epoch`` at random (seeded by seed and epoch): the replay frames of a fine-tune."""

    def __init__(
        self,
        num_atoms: Sequence[int],
        max_atoms: int,
        max_frames: int = 1 << 30,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pool_start: Optional[int] = None,
        pool_per_epoch: int = 0,
    ):
        self.num_atoms = np.asarray(num_atoms, dtype=np.int64)
        if len(self.num_atoms) and self.num_atoms.max() > max_atoms:
            raise ValueError(f"a frame has {int(self.num_atoms.max())} atoms, more than batch max_atoms={max_atoms}")
        self.max_atoms, self.max_frames = int(max_atoms), int(max_frames)
        self.shuffle, self.seed = shuffle, int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0
        self.skip = 0  # batches of this epoch already consumed (resume)
        self.pool_start = len(self.num_atoms) if pool_start is None else int(pool_start)
        self.pool_per_epoch = min(int(pool_per_epoch), len(self.num_atoms) - self.pool_start)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = int(epoch), int(skip)

    def all_batches(self, epoch: Optional[int] = None) -> List[List[int]]:
        order = np.arange(len(self.num_atoms))
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
            if self.pool_start < len(order):
                pool = rng.choice(order[self.pool_start :], self.pool_per_epoch, replace=False)
                order = np.concatenate([order[: self.pool_start], pool])
            order = rng.permutation(order)
        sizes = self.num_atoms.tolist()
        batches = list(pack_batches(order.tolist(), sizes.__getitem__, self.max_atoms, self.max_frames))
        if self.world_size > 1:  # equal count on every rank: repeat from the start to fill
            per = -(-len(batches) // self.world_size)
            batches = [batches[i % len(batches)] for i in range(per * self.world_size)]
            batches = batches[self.rank :: self.world_size]
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self.all_batches()[self.skip :])

    def __len__(self) -> int:
        return len(self.all_batches()) - self.skip
