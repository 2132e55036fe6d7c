"""Spiking neural network: leaky integrate-and-fire neurons that talk in binary spikes over time.

Each neuron leaks and integrates its input current into a membrane potential; when the potential
crosses a threshold it emits a spike (a 1) and drops by the threshold. Information travels as
spike trains, so a layer does work only where spikes arrive. The step function has no useful
derivative; training replaces it, in the backward pass only, by a smooth surrogate.

    U_t = \\beta U_{t-1} + W x_t - S_{t-1} \\theta,   S_t = \\Theta(U_t - \\theta),
    \\partial S_t / \\partial U_t \\approx 1 / (1 + k |U_t - \\theta|)^2

Maass, "Networks of spiking neurons: the third generation of neural network models", Neural Networks
1997; Neftci, Mostafa & Zenke, "Surrogate Gradient Learning in Spiking Neural Networks", IEEE Signal
Processing Magazine 2019 (the surrogate gradient); Zenke & Ganguli, "SuperSpike", Neural Computation
2018 (the fast-sigmoid surrogate).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.real import mnist_subset
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.fundamentals.mlp import MLP


class Spike(torch.autograd.Function):
    """Heaviside step forward; the fast-sigmoid surrogate 1 / (1 + k|v|)^2 backward."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, slope: float) -> torch.Tensor:  # v = U - theta
        ctx.save_for_backward(v)
        ctx.slope = slope
        # S = \Theta(U - \theta)
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (v,) = ctx.saved_tensors
        # \partial S / \partial U \approx 1 / (1 + k |U - \theta|)^2
        return grad / (1 + ctx.slope * v.abs()).square(), None


def spike(v: torch.Tensor, slope: float = 25.0) -> torch.Tensor:
    return Spike.apply(v, slope)


class LIF(nn.Module):
    """A layer of leaky integrate-and-fire neurons with reset by subtraction, run over a whole input train.

    The reset term uses the previous step's spike without a gradient through it (as snnTorch does), so
    the surrogate only carries credit through the firing decision itself.
    """

    def __init__(self, beta: float = 0.9, threshold: float = 1.0, slope: float = 25.0):
        super().__init__()
        if not 0 <= beta <= 1:
            raise ValueError(f"the leak beta must lie in [0, 1], got {beta}")
        self.beta, self.threshold, self.slope = beta, threshold, slope

    def forward(self, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (T, B, N) -> 2 x (T, B, N)
        u = torch.zeros_like(current[0])  # (B, N)
        s = torch.zeros_like(current[0])
        spikes, potentials = [], []
        for i_t in current:
            # U_t = \beta U_{t-1} + I_t - S_{t-1} \theta
            u = self.beta * u + i_t - s.detach() * self.threshold
            s = spike(u - self.threshold, self.slope)
            spikes.append(s)
            potentials.append(u)
        return torch.stack(spikes), torch.stack(potentials)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}, slope={self.slope}"


class SNN(nn.Module):
    """Fully connected spiking net: input spike trains -> [Linear -> LIF] per layer; the output layer's
    spike counts over the T steps are the class scores."""

    def __init__(self, sizes: tuple[int, ...] = (784, 128, 10), beta: float = 0.9, threshold: float = 1.0,
                 slope: float = 25.0):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError("an SNN needs at least input and output sizes, e.g. (784, 10)")
        self.synapses = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.neurons = LIF(beta, threshold, slope)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (T, B, n_in) spike trains -> (spike counts (B, n_out), every layer's spikes [(T, B, n_l)])."""
        trains = []
        for synapse in self.synapses:
            x, _ = self.neurons(synapse(x))  # (T, B, n_l)
            trains.append(x)
        return x.sum(0), trains


def rate_code(x: torch.Tensor, steps: int, generator: torch.Generator) -> torch.Tensor:
    """Poisson-like rate coding: at each of `steps` time steps a pixel of intensity p in [0, 1] spikes with
    probability p. (B, n) -> (T, B, n)."""
    return torch.bernoulli(x.expand(steps, *x.shape), generator=generator)


@register_model("snn", card="snn", example=lambda: (torch.rand(8, 4, 784).round(),))
def snn(**kw) -> SNN:
    return SNN(**kw)


# --- snn/spike-sparsity: how few neurons fire at any one step ---------------------------------------

@dataclass
class SparsityConfig:
    hidden: int = 128
    steps: int = 25  # time steps per image
    beta: float = 0.9
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    n_train: int = 4000


def _snn_accuracy(net: SNN, x: torch.Tensor, y: torch.Tensor, steps: int, g: torch.Generator) -> tuple[float, list]:
    """Accuracy on (x, y) and each layer's spike trains, from one rate-coded presentation per image."""
    with torch.no_grad():
        counts, trains = net(rate_code(x, steps, g))
    return (counts.argmax(1) == y).float().mean().item(), trains


@lab(
    "snn/spike-sparsity",
    card="snn",
    config=SparsityConfig,
    scales={
        "quick": {"epochs": 1, "n_train": 500, "steps": 10},
        "default": {},
        "full": {"epochs": 30, "hidden": 512},
    },
    goals=[Goal("test_acc", ">=", 0.9)],
    claims=[
        Check(
            "snn-event-driven",
            lambda m: m["hidden_active_share"] <= 0.2,
            "A {hidden}-neuron LIF layer trained with surrogate gradients on rate-coded MNIST ({steps} steps, test "
            "accuracy {test_acc:.3f}, an MLP of the same shape {mlp_acc:.3f}) fires in {hidden_active_share:.3f} "
            "of its neuron-steps (input layer {input_active_share:.3f}); {silent_share:.2f} of hidden neurons stay "
            "silent on a whole image. Spike-driven work is {synaptic_ops:.0f} synaptic additions per image against "
            "{ann_macs:.0f} multiply-adds for the MLP (ratio {ops_ratio:.2f}). Rule: supported when at most 0.2 of "
            "the hidden neurons spike at a time step on average",
        ),
    ],
    budget_s=90,
    threads=None,
)
def spike_sparsity(run, cfg: SparsityConfig) -> dict:
    """Train a 784-hidden-10 spiking net on the MNIST subset and count how many neurons fire per time step."""
    data = mnist_subset(flatten=True)
    x, y = data.x_train[:cfg.n_train], data.y_train[:cfg.n_train]
    g = torch.Generator().manual_seed(run.seed)
    torch.manual_seed(run.seed)
    net = SNN((784, cfg.hidden, 10), beta=cfg.beta)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    steps_per_epoch = len(x) // cfg.batch_size
    for epoch in run.progress(range(cfg.epochs), desc="SNN"):
        order = torch.randperm(len(x), generator=g)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            counts, _ = net(rate_code(x[idx], cfg.steps, g))
            # cross-entropy on the output spike counts, read as logits
            loss = F.cross_entropy(counts, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        run.log(epoch + 1, loss=total / steps_per_epoch)
    test_acc, (hidden_spikes, _) = _snn_accuracy(net, data.x_test, data.y_test, cfg.steps, g)
    input_spikes = rate_code(data.x_test, cfg.steps, g)  # (T, N, 784)

    # The same architecture as a rate-free MLP (ReLU), trained as long, for the accuracy and the work it does.
    mlp = MLP([784, cfg.hidden, 10], activation="relu", generator=g)
    mlp_opt = torch.optim.Adam(mlp.parameters(), lr=cfg.lr)
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            mlp_loss = F.cross_entropy(mlp(x[idx]), y[idx])
            mlp_opt.zero_grad(set_to_none=True)
            mlp_loss.backward()
            mlp_opt.step()
    with torch.no_grad():
        mlp_acc = (mlp(data.x_test).argmax(1) == data.y_test).float().mean().item()

    per_step = hidden_spikes.mean((1, 2))  # (T,) share of hidden neurons firing at each step
    # a synaptic event is one spike reaching one downstream neuron: an addition, no multiplication
    synaptic_ops = (input_spikes.sum((0, 2)).mean() * cfg.hidden + hidden_spikes.sum((0, 2)).mean() * 10).item()
    ann_macs = 784 * cfg.hidden + cfg.hidden * 10
    with run.figure("snn_spike_sparsity", ncols=2) as (fig, (ax_raster, ax_rate)):
        raster = hidden_spikes[:, 0].T  # (hidden, T) of the first test image
        ax_raster.imshow(raster.numpy(), aspect="auto", cmap="Greys", interpolation="nearest")
        ax_raster.set(xlabel="time step", ylabel="hidden neuron", title="spikes of one test image")
        ax_rate.plot(range(1, cfg.steps + 1), per_step.numpy(), "o-", label="hidden layer")
        ax_rate.plot(range(1, cfg.steps + 1), input_spikes.mean((1, 2)).numpy(), "s-", label="input layer")
        ax_rate.axhline(0.2, color="grey", ls="--", lw=1, label="0.2 (claim's rule)")
        ax_rate.set(xlabel="time step", ylabel="share of neurons spiking", ylim=(0, None),
                    title="activity per time step")
        ax_rate.legend()
    return {"test_acc": test_acc, "mlp_acc": mlp_acc, "hidden_active_share": per_step.mean().item(),
            "input_active_share": input_spikes.mean().item(),
            "silent_share": (hidden_spikes.sum(0) == 0).float().mean().item(),
            "synaptic_ops": synaptic_ops, "ann_macs": ann_macs, "ops_ratio": synaptic_ops / ann_macs,
            "hidden": cfg.hidden, "steps": cfg.steps, "epochs": cfg.epochs}
