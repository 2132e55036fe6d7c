import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.optim.optimizers import Adam
from deepatlas.zoo.meta.evolutionary_nas import (
    OPS, all_architectures, arch_index, forward_architectures, hill_climbing, local_optima, mixed_layer, mutate,
    random_search, regularized_evolution, train_architectures,
)


@given(st.lists(st.integers(0, len(OPS) - 1), min_size=1, max_size=4), st.integers(0, 10_000))
@settings(max_examples=50, deadline=None)
def test_mutate_changes_exactly_one_layer_and_index_roundtrips(arch, seed):
    arch = tuple(arch)
    child = mutate(arch, torch.Generator().manual_seed(seed))
    assert sum(a != b for a, b in zip(arch, child)) == 1
    assert tuple(all_architectures(len(arch))[arch_index(arch)].tolist()) == arch


def test_mixed_layer_applies_each_networks_own_op():
    g = torch.Generator().manual_seed(0)
    h, W, b = torch.randn(5, 3, 4, generator=g), torch.randn(5, 4, 4, generator=g), torch.randn(5, 4, generator=g)
    out = mixed_layer(h, W, b, torch.arange(5))
    z = h @ W + b[:, None]
    for a, ref in enumerate((h[0], z[1], z[2].relu(), z[3].tanh(), z[4].sigmoid())):
        torch.testing.assert_close(out[a], ref)


def test_batched_training_equals_training_each_network_alone():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 6, generator=g), torch.randint(3, (20,), generator=g)
    archs = all_architectures(2)[[3, 17]]
    both = train_architectures(archs, x, y, 4, 5, 0.01, torch.Generator().manual_seed(1))
    init = train_architectures(archs, x, y, 4, 0, 0.01, torch.Generator().manual_seed(1))
    alone = {}
    for a in range(2):  # the same initial weights, trained with only this network in the batch
        params = {k: v[a:a + 1].detach().clone().requires_grad_() for k, v in init.items()}
        opt = Adam(params.values(), lr=0.01)
        for _ in range(5):
            loss = torch.nn.functional.cross_entropy(forward_architectures(params, archs[a:a + 1], x)[0], y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        alone[a] = params
    for k in both:
        torch.testing.assert_close(both[k].detach(), torch.cat([alone[0][k], alone[1][k]]).detach())


def test_local_optima_on_a_known_table():
    table = torch.arange(25, dtype=torch.float64)  # strictly increasing index: only (4, 4) is a local optimum
    assert local_optima(table, 2).nonzero().flatten().tolist() == [24]
    table[0] = 100.0  # (0, 0) becomes a second one: (4, 4) does not neighbour it
    assert local_optima(table, 2).nonzero().flatten().tolist() == [0, 24]


def test_searches_on_a_table():
    table = torch.rand(125, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def fitness(arch):
        return table[arch_index(arch)].item()

    g = torch.Generator().manual_seed(1)
    assert len(random_search(fitness, 3, 20, g)) == 20
    history, end = hill_climbing(fitness, 3, 40, g)
    assert len(history) == 40 and fitness(end) == max(history)
    assert len(regularized_evolution(fitness, 3, 40, g, 8, 3)) == 40
    with pytest.raises(ValueError, match="sample_size"):
        regularized_evolution(fitness, 3, 40, g, 4, 5)
