import torch

from deepatlas.zoo.meta.darts import DartsMLP
from deepatlas.zoo.meta.evolutionary_nas import OPS, all_architectures
from deepatlas.zoo.meta.nas import shared_weight_accuracy, train_supernet


def test_single_path_step_updates_only_the_sampled_path(quiet_run):
    net = DartsMLP(6, 4, 2, 3, torch.Generator().manual_seed(0))
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    g = torch.Generator().manual_seed(3)
    arch = tuple(torch.randint(5, (2,), generator=torch.Generator().manual_seed(3)).tolist())  # what step 1 draws
    train_supernet(net, torch.randn(10, 6), torch.randint(3, (10,)), 1, 0.01, g, quiet_run)
    changed = {n for n, p in net.named_parameters() if not torch.equal(p, before[n])}
    expected = {"stem.weight", "stem.bias", "head.weight", "head.bias"}
    expected |= {f"cells.{i}.ops.{OPS[op]}.{w}" for i, op in enumerate(arch) if OPS[op] != "skip"
                 for w in ("weight", "bias")}
    assert changed == expected


def test_shared_weight_accuracy_matches_each_path():
    net = DartsMLP(6, 4, 2, 3, torch.Generator().manual_seed(0))
    x, y = torch.randn(12, 6), torch.randint(3, (12,))
    archs = all_architectures(2)
    acc = shared_weight_accuracy(net, archs, x, y)
    assert acc.shape == (25,)
    assert acc[7].item() == (net.path(x, tuple(archs[7].tolist())).argmax(-1) == y).double().mean().item()
