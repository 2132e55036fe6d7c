"""Compression and memory saving: knowledge distillation, pruning, int8 quantisation, gradient checkpointing.

Four ways to make a trained network cheaper. Distillation trains a small student on a large
teacher's temperature-softened outputs as well as on the labels. Pruning zeroes the weights of
smallest magnitude (unstructured: a sparse matrix of the same shape) or removes whole neurons and
filters of smallest L1 norm (structured: a genuinely smaller dense layer). Post-training int8
quantisation stores each weight as an 8-bit integer with a float scale and an integer zero point.
Gradient checkpointing keeps only the inputs of a few segments during the forward pass and
recomputes the rest in backward: less memory for one more forward pass.

Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015 (arXiv 1503.02531);
LeCun, Denker & Solla, "Optimal Brain Damage", NIPS 1989; Han et al., "Learning both Weights and
Connections for Efficient Neural Networks", NIPS 2015 (arXiv 1506.02626); Li et al., "Pruning Filters
for Efficient ConvNets", ICLR 2017 (arXiv 1608.08710); Jacob et al., "Quantization and Training of
Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018 (arXiv 1712.05877);
Krishnamoorthi, "Quantizing deep convolutional networks for efficient inference", 2018 (arXiv 1806.08342);
Chen et al., "Training Deep Nets with Sublinear Memory Cost", 2016 (arXiv 1604.06174).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from deepatlas.nn import linear
from deepatlas.nn.losses import cross_entropy, kl_divergence, log_softmax

LINEAR = (nn.Linear, linear.Linear)  # torch's affine layer and ours: y = x W^T + b, W (out, in)

# ---------------------------------------------------------------- knowledge distillation


def distillation_loss(z_s: torch.Tensor, z_t: torch.Tensor, target: torch.Tensor, tau: float = 4.0,
                      alpha: float = 0.5) -> torch.Tensor:
    """Hinton's loss for student logits z_s (N, C), teacher logits z_t (N, C) and class indices target (N,).

    `alpha` weighs the hard-label cross-entropy, 1 - alpha the soft-target term; the teacher is a
    constant (no gradient flows into it). The soft term is scaled by tau^2 because its gradient
    with respect to z_s is (p_S(tau) - p_T(tau)) / tau: without tau^2 it would fade as tau grows.
    Both terms are averaged over the batch.
    """
    if z_s.shape != z_t.shape or z_s.dim() != 2:
        raise ValueError(f"student and teacher logits must both be (N, C), got {tuple(z_s.shape)} "
                         f"and {tuple(z_t.shape)}")
    if tau <= 0:
        raise ValueError(f"temperature tau must be > 0, got {tau}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    hard = cross_entropy(z_s, target)
    # \log p_i(\tau) = \log \mathrm{softmax}(z / \tau)_i
    log_p_s = log_softmax(z_s / tau, dim=1)  # (N, C)
    log_p_t = log_softmax(z_t.detach() / tau, dim=1)  # (N, C)
    soft = kl_divergence(log_p_s, log_p_t, log_target=True)  # KL(p_T || p_S), averaged over the batch
    # \mathcal{L} = \alpha\,\mathrm{CE}(y, p^S(1)) + (1 - \alpha)\,\tau^2\,\mathrm{KL}(p^T(\tau) \Vert p^S(\tau))
    return alpha * hard + (1 - alpha) * tau ** 2 * soft


# ---------------------------------------------------------------- pruning

PRUNABLE = (*LINEAR, nn.Conv2d)
SCOPES = ("global", "layer")


class WeightMask(nn.Module):
    """The parametrisation w -> m * w: the layer always computes with the masked weight, so pruned
    weights stay zero through fine-tuning whatever the optimiser does to the stored values."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        # \tilde w = m \odot w
        return w * self.mask


def _keep_largest(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """A 0/1 mask of scores' shape that zeroes exactly round(sparsity * n) of the smallest scores
    (ties go to the earlier index, so the count is exact even when many scores are equal)."""
    n = scores.numel()
    k = round(sparsity * n)
    order = torch.argsort(scores.flatten(), stable=True)  # (n,) ascending |w|
    mask = torch.ones(n, dtype=scores.dtype, device=scores.device)
    mask[order[:k]] = 0
    return mask.reshape(scores.shape)


def magnitude_masks(weights: dict[str, torch.Tensor], sparsity: float,
                    scope: str = "global") -> dict[str, torch.Tensor]:
    """Masks that zero the smallest |w|: round(sparsity * n) weights over all tensors together ("global",
    so layers end up with different sparsities) or round(sparsity * n_l) in each tensor ("layer")."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
    if scope == "layer":
        return {name: _keep_largest(w.abs(), sparsity) for name, w in weights.items()}
    # m_i = \mathbb{1}[|w_i| > q_s(|\mathbf w|)] over the concatenation of every layer's weights
    flat = _keep_largest(torch.cat([w.abs().flatten() for w in weights.values()]), sparsity)
    masks = flat.split([w.numel() for w in weights.values()])
    return {name: m.reshape(w.shape) for (name, w), m in zip(weights.items(), masks)}


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE)}


def prune_magnitude(model: nn.Module, sparsity: float, scope: str = "global") -> dict[str, torch.Tensor]:
    """Mask the weights (not the biases) of every linear and Conv2d layer of `model` in place; return the masks.

    The mask is a parametrisation of `weight`: the parameter the optimiser updates (the same object as
    before, now `parametrizations.weight.original`) is multiplied by the mask in every forward pass,
    and its pruned entries receive zero gradient. `remove_masks` makes the zeros permanent.
    """
    layers = prunable_layers(model)
    if not layers:
        raise ValueError("the model has no linear or nn.Conv2d layer to prune")
    if any(parametrize.is_parametrized(m, "weight") for m in layers.values()):
        raise ValueError("the model is already pruned; call remove_masks(model) before pruning it again")
    masks = magnitude_masks({name: m.weight.detach() for name, m in layers.items()}, sparsity, scope)
    for name, m in layers.items():
        parametrize.register_parametrization(m, "weight", WeightMask(masks[name]))
    return masks


def remove_masks(model: nn.Module) -> nn.Module:
    """Replace each masked weight by the plain parameter m * w (zeros baked in)."""
    for m in prunable_layers(model).values():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return model


@torch.no_grad()
def weight_sparsity(model: nn.Module) -> float:
    """The fraction of exactly-zero weights over every linear and Conv2d layer (biases excluded)."""
    weights = [m.weight for m in prunable_layers(model).values()]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def l1_keep(weight: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Indices, ascending, of the n_keep output units (rows of a Linear, filters of a Conv2d) of largest L1 norm."""
    # \|W_{j}\|_1 = \sum_{i} |W_{j,i}|  (a filter sums over its input channels and kernel)
    norms = weight.abs().flatten(1).sum(1)  # (out,)
    return norms.topk(n_keep).indices.sort().values


def _resized(layer: nn.Module, n_in: int, n_out: int) -> nn.Module:
    """An uninitialised layer of `layer`'s kind with n_in inputs and n_out outputs."""
    bias = layer.bias is not None
    if isinstance(layer, nn.Conv2d):
        small = nn.Conv2d(n_in, n_out, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                          bias=bias, padding_mode=layer.padding_mode)
    else:
        small = type(layer)(n_in, n_out, bias=bias)
    return small.to(layer.weight.device, layer.weight.dtype)


@torch.no_grad()
def prune_structured(layer: nn.Module, next_layer: nn.Module, ratio: float) -> tuple[nn.Module, nn.Module]:
    """Remove the fraction `ratio` of `layer`'s output units with the smallest L1 norm (Li et al. 2017) and the
    matching inputs of `next_layer`; returns two new, smaller dense layers (linear -> linear or Conv2d -> Conv2d
    with only elementwise operations between them)."""
    if not (isinstance(layer, PRUNABLE) and type(next_layer) is type(layer)):
        raise ValueError(f"prune_structured expects two linear layers of one kind or two nn.Conv2d, got "
                         f"{type(layer).__name__} and {type(next_layer).__name__}")
    if isinstance(layer, nn.Conv2d) and (layer.groups != 1 or next_layer.groups != 1):
        raise ValueError("prune_structured supports only convolutions with groups=1")
    n_out = layer.weight.shape[0]
    if next_layer.weight.shape[1] != n_out:
        raise ValueError(f"next_layer takes {next_layer.weight.shape[1]} inputs but layer gives {n_out}")
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio must be in [0, 1), got {ratio}")
    n_keep = n_out - round(ratio * n_out)
    if n_keep == 0:
        raise ValueError(f"ratio {ratio} would remove all {n_out} units of the layer")
    keep = l1_keep(layer.weight, n_keep)  # (n_keep,)
    small = _resized(layer, layer.weight.shape[1], len(keep))
    small.weight.copy_(layer.weight[keep])
    if layer.bias is not None:
        small.bias.copy_(layer.bias[keep])
    small_next = _resized(next_layer, len(keep), next_layer.weight.shape[0])
    small_next.weight.copy_(next_layer.weight[:, keep])
    if next_layer.bias is not None:
        small_next.bias.copy_(next_layer.bias)
    return small, small_next


# ---------------------------------------------------------------- int8 quantisation

QMIN, QMAX = -128, 127  # signed int8
EPS = torch.finfo(torch.float32).eps  # the smallest scale, so that an all-zero tensor still quantises


def affine_qparams(x_min: torch.Tensor, x_max: torch.Tensor, qmin: int = QMIN,
                   qmax: int = QMAX) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point mapping [x_min, x_max], widened to contain 0 (so 0 is exact), onto [qmin, qmax].

    Tensors x_min, x_max of any shape: scalars for per-tensor, one per channel for per-channel quantisation.
    """
    x_min = torch.as_tensor(x_min, dtype=torch.float32).clamp(max=0)
    x_max = torch.as_tensor(x_max, dtype=torch.float32).clamp(min=0)
    # s = \frac{x_{\max} - x_{\min}}{q_{\max} - q_{\min}}
    scale = ((x_max - x_min) / (qmax - qmin)).clamp(min=EPS)
    # z = q_{\min} - \lfloor x_{\min} / s \rceil
    zero_point = (qmin - torch.round(x_min / scale)).clamp(qmin, qmax).to(torch.int32)
    return scale, zero_point


def symmetric_qparams(abs_max: torch.Tensor, qmax: int = QMAX) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale with zero point 0 mapping [-abs_max, abs_max] onto [-qmax, qmax] (the restricted int8 range)."""
    abs_max = torch.as_tensor(abs_max, dtype=torch.float32)
    # s = \max|x| / q_{\max}, \quad z = 0
    scale = (abs_max / qmax).clamp(min=EPS)
    return scale, torch.zeros_like(scale, dtype=torch.int32)


def _along(t: torch.Tensor, axis: int | None, ndim: int) -> torch.Tensor:
    """Reshape per-channel parameters (C,) to broadcast along `axis` of an ndim tensor."""
    if axis is None:
        return t
    shape = [1] * ndim
    shape[axis] = -1
    return t.reshape(shape)


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int | None = None,
             qmin: int = QMIN, qmax: int = QMAX) -> torch.Tensor:
    """int8 codes of x; per-tensor (scalar scale and zero point) or per-channel along `axis`."""
    s, z = _along(scale, axis, x.dim()), _along(zero_point, axis, x.dim())
    # q = \mathrm{clip}(\lfloor x / s \rceil + z,\ q_{\min},\ q_{\max})   (round half to even)
    return (torch.round(x / s) + z).clamp(qmin, qmax).to(torch.int8)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int | None = None) -> torch.Tensor:
    """The float values that int8 codes q stand for."""
    s, z = _along(scale, axis, q.dim()), _along(zero_point, axis, q.dim())
    # \hat x = s\,(q - z)
    return s * (q.to(torch.float32) - z)


def weight_qparams(w: torch.Tensor, per_channel: bool = True,
                   symmetric: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point for a weight (out, ...): one pair per output channel, or one for the tensor."""
    w = w.detach()
    lo, hi = (w.flatten(1).amin(1), w.flatten(1).amax(1)) if per_channel else (w.min(), w.max())  # (out,) or ()
    return symmetric_qparams(torch.maximum(-lo, hi)) if symmetric else affine_qparams(lo, hi)


class QuantizedLinear(nn.Module):
    """A Linear layer that stores its weight as int8 codes with float32 scales and int8 zero points.

    It computes by dequantising the weight and doing a float matmul: the same numbers as an integer
    kernel, which would sum (q_x - z_x)(q_w - z_w) in int32 and rescale by s_x s_w once, up to float
    rounding, but without its speed. With `act_qparams` the input is rounded to the int8 grid too
    (the activation range comes from calibration), so the layer sees what an int8 kernel would.
    """

    def __init__(self, q_weight: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                 bias: torch.Tensor | None, act_qparams: tuple[torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        if q_weight.dtype != torch.int8 or q_weight.dim() != 2:
            raise ValueError(f"q_weight must be an int8 matrix (out, in), got {q_weight.dtype} {tuple(q_weight.shape)}")
        self.axis = 0 if scale.dim() == 1 else None  # per output channel, or per tensor
        self.register_buffer("q_weight", q_weight)  # (out, in) int8
        self.register_buffer("scale", scale.to(torch.float32))  # (out,) or ()
        self.register_buffer("zero_point", zero_point.to(torch.int8))  # (out,) or (); z lies in [q_min, q_max]
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.float32).clone())  # (out,)
        act_scale, act_zero_point = act_qparams or (None, None)
        self.register_buffer("act_scale", None if act_scale is None else act_scale.to(torch.float32))  # ()
        self.register_buffer("act_zero_point", None if act_zero_point is None else act_zero_point.to(torch.int8))  # ()

    @classmethod
    def from_linear(cls, layer: nn.Module, per_channel: bool = True, symmetric: bool = False,
                    act_range: tuple[float, float] | None = None) -> QuantizedLinear:
        """Quantise a linear layer's weight (out, in); `act_range` (min, max) quantises its input too."""
        scale, zero_point = weight_qparams(layer.weight, per_channel, symmetric)
        q = quantize(layer.weight.detach().float(), scale, zero_point, axis=0 if per_channel else None)
        act = None if act_range is None else affine_qparams(*act_range)
        return cls(q, scale, zero_point, layer.bias, act)

    def weight(self) -> torch.Tensor:
        return dequantize(self.q_weight, self.scale, self.zero_point, self.axis)  # (out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        if self.act_scale is not None:
            x = dequantize(quantize(x, self.act_scale, self.act_zero_point), self.act_scale, self.act_zero_point)
        # y = x \hat W^\top + b, \quad \hat W = s\,(q_W - z)
        y = x @ self.weight().T
        return y if self.bias is None else y + self.bias


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[torch.Tensor]) -> dict[str, tuple[float, float]]:
    """The smallest and largest input that each linear layer of `model` sees over the calibration batches
    (a min/max observer)."""
    ranges: dict[str, tuple[float, float]] = {}

    def observe(name):
        def hook(_, args):
            lo, hi = ranges.get(name, (float("inf"), float("-inf")))
            ranges[name] = (min(lo, args[0].min().item()), max(hi, args[0].max().item()))
        return hook

    handles = [m.register_forward_pre_hook(observe(name)) for name, m in model.named_modules()
               if isinstance(m, LINEAR)]
    try:
        for x in batches:
            model(x)
    finally:
        for h in handles:
            h.remove()
    return ranges


def quantize_model(model: nn.Module, per_channel: bool = True, symmetric: bool = False,
                   act_ranges: dict[str, tuple[float, float]] | None = None) -> nn.Module:
    """A copy of `model` with every linear layer replaced by a QuantizedLinear (inputs quantised too where
    `act_ranges`, from `calibrate`, names the layer)."""
    model = copy.deepcopy(model)
    for name, m in list(model.named_modules()):
        if isinstance(m, LINEAR):
            parent, _, child = name.rpartition(".")
            q = QuantizedLinear.from_linear(m, per_channel, symmetric, (act_ranges or {}).get(name))
            setattr(model.get_submodule(parent) if parent else model, child, q)
    return model


def model_bytes(model: nn.Module) -> int:
    """Bytes of every tensor the model stores (parameters and buffers), as they are kept in memory."""
    return sum(t.numel() * t.element_size() for t in itertools.chain(model.parameters(), model.buffers()))


# ---------------------------------------------------------------- gradient checkpointing


class Checkpoint(torch.autograd.Function):
    """Run fn(*inputs) without recording a graph; in backward, run it again with the graph on and
    backpropagate through the recomputation. Only the inputs are kept between forward and backward.

    The segment's parameters are passed in too, so that the function is part of the graph even when
    its input needs no gradient (the first segment) and their gradients come back from backward.
    The CPU random state is saved and restored, so dropout draws the same mask when recomputed.
    """

    @staticmethod
    def forward(ctx, fn, n_inputs: int, *tensors: torch.Tensor) -> torch.Tensor:
        ctx.fn, ctx.params = fn, tensors[n_inputs:]  # parameters are leaves: held by reference
        ctx.rng_state = torch.get_rng_state()
        ctx.save_for_backward(*tensors[:n_inputs])  # the segment's input; no intermediate activation
        with torch.no_grad():
            return fn(*tensors[:n_inputs])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        inputs = [x.detach().requires_grad_(x.requires_grad) for x in ctx.saved_tensors]
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.set_rng_state(ctx.rng_state)
            out = ctx.fn(*inputs)  # the recomputed forward, this time with its graph
        wanted = [t for t, need in zip(inputs + list(ctx.params), ctx.needs_input_grad[2:]) if need]
        grads = iter(torch.autograd.grad(out, wanted, grad_out, allow_unused=True))
        return (None, None, *(next(grads) if need else None for need in ctx.needs_input_grad[2:]))


def checkpoint(fn: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """fn(*inputs) through `Checkpoint`, with fn's parameters that need gradients."""
    params = [p for p in fn.parameters() if p.requires_grad]
    return Checkpoint.apply(fn, len(inputs), *inputs, *params)


class CheckpointedSequential(nn.Module):
    """nn.Sequential split into `segments` runs of consecutive layers; every run but the last is
    checkpointed, so backward keeps segments - 1 boundary activations plus one segment's worth at a time.

    The split is torch.utils.checkpoint.checkpoint_sequential's: runs of len(layers) // segments layers,
    the last run taking the rest. Layers that update state in forward (BatchNorm's running statistics)
    would update it twice.
    """

    def __init__(self, layers: Sequence[nn.Module], segments: int):
        super().__init__()
        if not 1 <= segments <= len(layers):
            raise ValueError(f"segments must be between 1 and the number of layers ({len(layers)}), got {segments}")
        self.layers = nn.Sequential(*layers)
        self.segments = segments

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():  # nothing is kept for backward: no reason to recompute
            return self.layers(x)
        size = len(self.layers) // self.segments
        # \text{memory} = O(k + n / k): k - 1 kept inputs, then one run of n / k layers at a time
        for start in range(0, size * (self.segments - 1), size):
            x = checkpoint(self.layers[start:start + size], x)
        return self.layers[size * (self.segments - 1):](x)


class SavedActivationMeter:
    """Counts the bytes autograd holds for backward: distinct storages saved by operations, minus the
    model's parameters (they are memory anyway). `peak` is the most held at once over everything run
    inside the `with` block, forward and backward (a checkpoint's recomputation included).

        with SavedActivationMeter(model) as meter:
            model(x).sum().backward()
        meter.peak
    """

    def __init__(self, model: nn.Module):
        self._params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self._held: dict[int, list[int]] = {}  # storage address -> [references, bytes]
        self.now = 0
        self.peak = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def __enter__(self) -> SavedActivationMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)

    def _pack(self, t: torch.Tensor):
        storage = t.untyped_storage()
        address = storage.data_ptr()
        if address in self._params:
            return t
        return _Held(t, self, address, storage.nbytes())

    @staticmethod
    def _unpack(packed):
        return packed.tensor if isinstance(packed, _Held) else packed

    def _add(self, address: int, nbytes: int) -> None:
        entry = self._held.setdefault(address, [0, nbytes])
        if entry[0] == 0:
            self.now += nbytes
            self.peak = max(self.peak, self.now)
        entry[0] += 1

    def _remove(self, address: int) -> None:
        entry = self._held[address]
        entry[0] -= 1
        if entry[0] == 0:
            self.now -= entry[1]
            del self._held[address]


class _Held:
    """A saved tensor as autograd keeps it; the meter counts it until autograd lets it go."""

    def __init__(self, tensor: torch.Tensor, meter: SavedActivationMeter, address: int, nbytes: int):
        self.tensor, self.meter, self.address = tensor, meter, address
        meter._add(address, nbytes)

    def __del__(self):
        self.meter._remove(self.address)
