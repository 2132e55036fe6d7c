import torch
import torch.nn.functional as F

from deepatlas.zoo.meta.darts import DartsMLP, MixedOp, search
from deepatlas.zoo.meta.evolutionary_nas import OPS, all_architectures, forward_architectures


def test_mixed_op_with_one_hot_weights_is_that_op():
    op = MixedOp(4, torch.Generator().manual_seed(0))
    h = torch.randn(3, 4)
    for k in range(len(OPS)):
        torch.testing.assert_close(op(h, F.one_hot(torch.tensor(k), len(OPS)).float()), op.path(h, k))


def test_path_equals_a_standalone_network_with_the_same_weights():
    net = DartsMLP(6, 4, 2, 3, torch.Generator().manual_seed(0))
    x = torch.randn(5, 6)
    arch = (2, 4)  # relu then sigmoid
    params = {"stem": net.stem.weight.T[None], "stem_b": net.stem.bias[None],
              "W": torch.stack([net.cells[0].ops["relu"].weight.T, net.cells[1].ops["sigmoid"].weight.T])[None],
              "b": torch.stack([net.cells[0].ops["relu"].bias, net.cells[1].ops["sigmoid"].bias])[None],
              "head": net.head.weight.T[None], "head_b": net.head.bias[None]}
    torch.testing.assert_close(net.path(x, arch), forward_architectures(params, torch.tensor([arch]), x)[0])


def test_uniform_alpha_is_the_mean_of_all_ops_and_search_moves_alpha(quiet_run):
    net = DartsMLP(6, 4, 1, 3, torch.Generator().manual_seed(0))
    x, y = torch.randn(30, 6), torch.randint(3, (30,))
    h = torch.relu(net.stem(x))
    mean = sum(net.cells[0].path(h, k) for k in range(len(OPS))) / len(OPS)
    torch.testing.assert_close(net(x), net.head(mean))
    before = net.alpha.detach().clone()
    search(net, x[:20], y[:20], x[20:], y[20:], 5, 0.01, 0.1, quiet_run)
    assert not torch.equal(before, net.alpha.detach())
    assert tuple(all_architectures(1)[net.alpha.argmax(-1)].flatten().tolist()) == net.derive()
