"""Data-parallel training: two gloo processes, each with half a batch, give the loss and gradient of
one process that sees the whole batch."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from facetpot.testing import small_model
from facetpot.data.batching import collate, frame_to_graph
from facetpot.data.readers import atoms_to_frame
from facetpot.training.distributed import loss_backward
from test_training import emt_frames


def _batch(frames):
    return collate([frame_to_graph(atoms_to_frame(a), 4.0) for a in frames])


def _frames():
    return emt_frames(n=6, seed=4)


LOSS = {"type": "huber", "huber_delta": 0.01, "energy_weight": 1.0, "forces_weight": 10.0, "stress_weight": 1.0}


def _worker(rank, world, port, result):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = small_model(species=[13, 29])
        frames = _frames()
        mine = frames[:2] if rank == 0 else frames[2:]  # unequal halves: 2 and 4 frames
        loss = loss_backward(model, _batch(mine), LOSS)
        result[rank] = (loss, {n: p.grad.clone() for n, p in model.named_parameters()})
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_ranks_equal_one_process():
    model = small_model(species=[13, 29])
    single = loss_backward(model, _batch(_frames()), LOSS)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    result = manager.dict()
    mp.spawn(_worker, args=(2, port, result), nprocs=2, join=True)
    for rank in range(2):
        loss, g = result[rank]
        assert loss == pytest.approx(single, rel=1e-12)
        for n in grads:
            assert torch.allclose(g[n], grads[n], rtol=1e-10, atol=1e-12), n
