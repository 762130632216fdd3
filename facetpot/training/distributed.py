"""Data-parallel training (torchrun) and the one loss that makes it exact.

Without torchrun every helper is the single-process case: rank 0 of a world of 1, no
communication. Under torchrun (``WORLD_SIZE`` > 1) :func:`init` starts the process group (NCCL on
GPUs, gloo on CPUs); every rank trains on its share of the batches and :func:`loss_backward` sums
the gradients, normalised by the label counts of all ranks, so they equal the gradient of one
process that sees the union of the batches (see ``loss.py``).
"""

from __future__ import annotations

import os
import sys
from typing import Dict

import torch

from .loss import combine, loss_terms, predict


def rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def world_size() -> int:
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def local_rank() -> int:
    """This process's GPU on its node (torchrun's ``LOCAL_RANK``)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def log(msg: str) -> None:
    """Print to stderr on rank 0 only."""
    if rank() == 0:
        print(msg, file=sys.stderr, flush=True)


def init(device: str) -> None:
    """Start the process group when launched by torchrun; ``device`` is ``training.device``."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and device != "cpu" else "gloo"
        torch.distributed.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(local_rank())


def barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Rank 0's weights on every rank."""
    if world_size() > 1:
        for p in model.parameters():
            torch.distributed.broadcast(p.data, 0)


def broadcast_value(value: float, device) -> float:
    """Rank 0's ``value`` on every rank (e.g. its clock: the schedule and the loss stage follow one time)."""
    if world_size() == 1:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    torch.distributed.broadcast(t, 0)
    return float(t.item())


def broadcast_flag(flag: bool, device) -> bool:
    """Rank 0's ``flag`` on every rank (rank 0's clock decides for everyone)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    torch.distributed.broadcast(t, 0)
    return bool(t.item())


def loss_backward(model, batch, loss_cfg) -> float:
    """Loss of this rank's batch normalised by the counts of all ranks; gradients accumulated into
    ``.grad`` and summed over ranks, so every rank holds the gradient of the union of the batches.
    Returns the global loss."""
    pred = predict(model, batch, create_graph=True)
    terms = loss_terms(pred, batch, loss_cfg)
    ref = pred["energy"]
    counts: Dict[str, torch.Tensor] = {
        f"{n}_count": terms[f"{n}_count"].detach().clone()
        if f"{n}_count" in terms
        else torch.zeros((), dtype=ref.dtype, device=ref.device)
        for n in ("energy", "forces", "stress")
    }
    if world_size() > 1:
        for v in counts.values():
            torch.distributed.all_reduce(v)
    loss = combine(terms, counts, loss_cfg)
    if torch.is_tensor(loss):
        loss.backward()
    for p in model.parameters():  # parameters the batch did not reach get a zero gradient
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)
    value = torch.tensor(
        [float(loss.detach()) if torch.is_tensor(loss) else 0.0], dtype=torch.float64, device=ref.device
    )
    if world_size() > 1:
        for p in model.parameters():
            if p.requires_grad:
                torch.distributed.all_reduce(p.grad)
        torch.distributed.all_reduce(value)
    return float(value)
