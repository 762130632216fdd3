"""Atom-budget packing: one rule (pack_batches) for the training sampler and for facet eval's stream."""

import itertools

import numpy as np

from facetpot.data.batching import BudgetBatchSampler, pack_batches


def reference_batches(sizes, max_atoms, max_frames, seed, epoch, shuffle=True, rank=0, world_size=1):
    """The sampler's batches as written before pack_batches existed (resumed runs depend on them)."""
    order = np.arange(len(sizes))
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(order)
    batches, cur, atoms = [], [], 0
    for k in order:
        n = int(sizes[k])
        if cur and (atoms + n > max_atoms or len(cur) >= max_frames):
            batches.append(cur)
            cur, atoms = [], 0
        cur.append(int(k))
        atoms += n
    if cur:
        batches.append(cur)
    if world_size > 1:
        per = -(-len(batches) // world_size)
        batches = (batches * 2)[: per * world_size]
        batches = batches[rank::world_size]
    return batches


def test_sampler_batches_are_unchanged():
    sizes = np.random.default_rng(1).integers(1, 40, size=300)
    for max_atoms, max_frames in ((64, 1 << 30), (64, 3), (40, 1), (500, 7)):
        for epoch in (0, 3):
            s = BudgetBatchSampler(sizes, max_atoms, max_frames, seed=5)
            assert s.all_batches(epoch) == reference_batches(sizes, max_atoms, max_frames, 5, epoch)
            for rank in range(3):
                s = BudgetBatchSampler(sizes, max_atoms, max_frames, seed=5, rank=rank, world_size=3)
                assert s.all_batches(epoch) == reference_batches(
                    sizes, max_atoms, max_frames, 5, epoch, rank=rank, world_size=3
                )
    s = BudgetBatchSampler(sizes, 64, 4, shuffle=False)
    assert s.all_batches() == reference_batches(sizes, 64, 4, 0, 0, shuffle=False)


def test_pack_batches_is_lazy_and_keeps_order():
    sizes = itertools.cycle([3, 5, 2, 7])  # endless: only what is asked for is read
    first = list(itertools.islice(pack_batches(sizes, lambda n: n, max_atoms=10), 3))
    assert first == [[3, 5, 2], [7, 3], [5, 2]]
    assert list(pack_batches([12, 1, 1], lambda n: n, max_atoms=10)) == [[12], [1, 1]]  # too big: alone
    assert list(pack_batches(range(5), lambda n: 1, max_atoms=100, max_frames=2)) == [[0, 1], [2, 3], [4]]
    assert list(pack_batches([], lambda n: n, max_atoms=10)) == []


def test_every_rank_gets_batches_when_ranks_outnumber_them():
    """More ranks than batches: every rank still gets the same number of batches (a rank without
    one would leave the others waiting forever in the gradient all-reduce)."""
    sizes = [10, 10, 10]  # max_atoms 10 -> 3 batches
    counts = [len(BudgetBatchSampler(sizes, 10, rank=r, world_size=8).all_batches(0)) for r in range(8)]
    assert counts == [1] * 8


def test_predict_structures_equals_one_call_per_structure():
    """Batched predictions (several structures per graph, a molecule among them) are each structure's own
    energy, forces and Voigt stress from the ASE calculator (a molecule in a box: the box's stress, as the
    calculator's; ``validation.has_volume``)."""
    from ase.build import bulk, molecule

    from facetpot import FacetCalculator
    from facetpot.inference.single_points import predict_structures
    from facetpot.testing import small_model

    model = small_model(species=[1, 6, 8, 13, 29])
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    al = bulk("Al", "fcc", a=4.05) * (2, 1, 1)
    al.rattle(0.05, seed=1)
    mol = molecule("CH3CH2OH")
    mol.center(vacuum=3.0)
    structures = [cu, al, mol, cu.copy()]
    out = predict_structures(model, structures, batch_atoms=8)  # [cu, al] [mol] [cu]
    calc = FacetCalculator(model, dtype="float64")
    for atoms, (energy, forces, stress) in zip(structures, out):
        a = atoms.copy()
        a.calc = calc
        assert abs(energy - a.get_potential_energy()) < 1e-10
        assert np.abs(forces - a.get_forces()).max() < 1e-10
        assert np.abs(stress - a.get_stress()).max() < 1e-12  # the boxed molecule too: its box's stress


def test_pool_frames_are_drawn_anew_each_epoch():
    """Positions 0..9 every epoch; 4 of the pool 10..29 per epoch, seeded by (seed, epoch): other ones next epoch."""
    s = BudgetBatchSampler([3] * 30, max_atoms=12, seed=2, pool_start=10, pool_per_epoch=4)
    picks = []
    for epoch in range(3):
        s.set_epoch(epoch)
        seen = [i for b in s for i in b]
        assert sorted(i for i in seen if i < 10) == list(range(10)) and len(seen) == 14 and len(set(seen)) == 14
        picks.append(sorted(i for i in seen if i >= 10))
        assert [i for b in s.all_batches(epoch) for i in b] == seen  # the same draw again (resume)
    assert picks[0] != picks[1] != picks[2]
    plain = BudgetBatchSampler([3] * 10, max_atoms=12, seed=2)  # no pool: the order of a sampler without one
    assert BudgetBatchSampler([3] * 10, max_atoms=12, seed=2, pool_start=10).all_batches(1) == plain.all_batches(1)
