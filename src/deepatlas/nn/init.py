"""Weight initialisation: the starting point that decides whether a deep network's signal survives.

A layer with n_in inputs multiplies the second moment of its input by n_in Var[W]
(times what the nonlinearity keeps), so a fixed small scale makes signals shrink
geometrically with depth. Xavier/Glorot picks Var[W] = 2 / (n_in + n_out) to keep both the
forward and the backward variance for tanh-like units; He/Kaiming picks 2 / n_in because
ReLU zeroes half of its inputs. Constant weights leave every unit of a layer identical.

    \\mathrm{Var}[z^{(l)}] = n_{\\text{in}} \\mathrm{Var}[W^{(l)}] \\mathbb{E}[(h^{(l-1)})^2]

Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
networks", AISTATS 2010. He, Zhang, Ren & Sun, "Delving Deep into Rectifiers", arXiv:1502.01852.

Each function fills `tensor` in place and returns it, sampling with the same tensor
operations (and so, for a given generator state, the same numbers) as torch.nn.init.
"""

from __future__ import annotations

import math

import torch

GAINS = {"linear": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0, "conv_transpose1d": 1.0,
         "conv_transpose2d": 1.0, "conv_transpose3d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3,
         "relu": math.sqrt(2.0), "selu": 3.0 / 4}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor by which to scale the standard deviation so that `nonlinearity` keeps the variance."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"leaky_relu's negative slope must be a number, got {param!r}")
        # \mathrm{gain} = \sqrt{2 / (1 + a^2)}: a leaky rectifier keeps (1 + a^2)/2 of the second moment
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in GAINS:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}; choose from {', '.join([*GAINS, 'leaky_relu'])}")
    return GAINS[nonlinearity]


def fans(tensor: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear weight (out, in) or a Conv weight (out, in/groups, *kernel)."""
    if tensor.dim() < 2:
        raise ValueError(f"fan_in and fan_out need a weight with at least 2 dimensions, got shape "
                         f"{tuple(tensor.shape)}; initialise biases with zeros_, constant_, normal_ or uniform_")
    receptive_field = math.prod(tensor.shape[2:])  # kernel size k_1 * k_2 * ..., 1 for Linear
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def zeros_(tensor: torch.Tensor) -> torch.Tensor:
    return constant_(tensor, 0.0)


@torch.no_grad()
def constant_(tensor: torch.Tensor, val: float) -> torch.Tensor:
    # W_{ij} = c: every unit of the layer starts (and, by symmetry, stays) the same
    return tensor.fill_(val)


@torch.no_grad()
def normal_(tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0,
            generator: torch.Generator | None = None) -> torch.Tensor:
    # W_{ij} \sim \mathcal{N}(\mu, s^2)
    return tensor.normal_(mean, std, generator=generator)


@torch.no_grad()
def uniform_(tensor: torch.Tensor, a: float = 0.0, b: float = 1.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    # W_{ij} \sim \mathcal{U}(a, b)
    return tensor.uniform_(a, b, generator=generator)


def _fan(tensor: torch.Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"cannot scale by the {mode} of an empty weight of shape {tuple(tensor.shape)}")
    return fan


def xavier_std(tensor: torch.Tensor, gain: float = 1.0) -> float:
    fan_in, fan_out = fans(tensor)
    if fan_in + fan_out == 0:
        raise ValueError(f"cannot scale by the fans of an empty weight of shape {tuple(tensor.shape)}")
    # \mathrm{std} = \mathrm{gain} \sqrt{2 / (n_{in} + n_{out})}
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def xavier_uniform_(tensor: torch.Tensor, gain: float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    # W \sim \mathcal{U}(-a, a),\ a = \mathrm{gain}\sqrt{6 / (n_{in} + n_{out})}: U(-a, a) has variance a^2 / 3
    bound = math.sqrt(3.0) * xavier_std(tensor, gain)
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: torch.Tensor, gain: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    # W \sim \mathcal{N}\left(0, \mathrm{gain}^2 \cdot 2 / (n_{in} + n_{out})\right)
    return normal_(tensor, 0.0, xavier_std(tensor, gain), generator)


def kaiming_std(tensor: torch.Tensor, a: float = 0.0, mode: str = "fan_in",
                nonlinearity: str = "leaky_relu") -> float:
    # \mathrm{std} = \mathrm{gain} / \sqrt{n},  n = n_{in} (forward) or n_{out} (backward);
    # for ReLU \mathrm{Var}[W] = 2 / n_{in}
    return calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))


def kaiming_uniform_(tensor: torch.Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator: torch.Generator | None = None) -> torch.Tensor:
    # W \sim \mathcal{U}(-b, b),\ b = \sqrt3\,\mathrm{std} (= \sqrt{6 / n_{in}} for ReLU)
    bound = math.sqrt(3.0) * kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: torch.Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator: torch.Generator | None = None) -> torch.Tensor:
    # W \sim \mathcal{N}(0, \mathrm{std}^2) (= \mathcal{N}(0, 2 / n_{in}) for ReLU)
    return normal_(tensor, 0.0, kaiming_std(tensor, a, mode, nonlinearity), generator)


__all__ = [
    "calculate_gain", "fans", "zeros_", "constant_", "normal_", "uniform_", "xavier_std", "xavier_uniform_",
    "xavier_normal_", "kaiming_std", "kaiming_uniform_", "kaiming_normal_",
]
