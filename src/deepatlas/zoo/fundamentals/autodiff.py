"""Reverse-mode automatic differentiation on scalars: a `Value` remembers how it was made.

Every operation records its inputs and its local derivative; `backward()` orders the graph
topologically and sweeps it once from the output, each node passing its adjoint times the
local derivative on to its inputs (the chain rule). One sweep gives the gradient of a scalar
with respect to every input, which is how frameworks train networks: backpropagation is this
sweep run on a layered network. This is plain Python on purpose, one float per node, so it
is slow (seconds for a few hundred parameters); torch.autograd does the same on tensors.

    \\bar v_i = \\sum_{j \\in \\mathrm{children}(i)} \\bar v_j \\, \\partial v_j / \\partial v_i,   \\bar y = 1

Linnainmaa, "The representation of the cumulative rounding error of an algorithm as a Taylor
expansion of the local rounding errors", MSc thesis, Helsinki 1970; Rumelhart, Hinton &
Williams, "Learning representations by back-propagating errors", Nature 1986. The design
follows Karpathy's micrograd.
"""

from __future__ import annotations

import gc
import math
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from deepatlas.data.toy2d import toy_split
from deepatlas.labs import Check, Goal, lab


class Value:
    """A scalar in a computation graph: `data`, and `grad` = d(output)/d(self) after output.backward().

    Each Value keeps its inputs and the local derivative d(self)/d(input) of each, computed
    in the forward pass; the backward sweep only multiplies and adds them.
    """

    __slots__ = ("data", "grad", "inputs", "local_grads", "op")  # op: the operation that made it, for reading

    def __init__(self, data: float, inputs: tuple[Value, ...] = (), local_grads: tuple[float, ...] = (),
                 op: str = ""):
        self.data = float(data)
        self.grad = 0.0
        self.inputs = inputs
        self.local_grads = local_grads
        self.op = op

    def __repr__(self) -> str:
        made_by = f", op={self.op!r}" if self.op else ""
        return f"Value(data={self.data!r}, grad={self.grad!r}{made_by})"

    def __add__(self, other) -> Value:
        other = _lift(other)
        # \partial (a + b) / \partial a = \partial (a + b) / \partial b = 1
        return Value(self.data + other.data, (self, other), (1.0, 1.0), "+")

    def __mul__(self, other) -> Value:
        other = _lift(other)
        # \partial (ab) / \partial a = b,   \partial (ab) / \partial b = a
        return Value(self.data * other.data, (self, other), (other.data, self.data), "*")

    def __truediv__(self, other) -> Value:
        other = _lift(other)
        a, b = self.data, other.data
        if b == 0.0:
            raise ZeroDivisionError(f"division of {a!r} by a Value equal to zero")
        # \partial (a / b) / \partial a = 1 / b,   \partial (a / b) / \partial b = -a / b^2
        return Value(a / b, (self, other), (1.0 / b, -a / (b * b)), "/")

    def __pow__(self, p: int | float) -> Value:
        if isinstance(p, Value) or isinstance(p, bool) or not isinstance(p, int | float):
            raise TypeError(f"Value ** p needs a constant int or float exponent, got {type(p).__name__}; "
                            "for a variable exponent write (p * x.log()).exp()")
        x = self.data
        if x == 0.0 and p < 1:
            raise ZeroDivisionError(f"0 ** {p}: the derivative p x^(p-1) is undefined at x = 0")
        if x < 0.0 and not float(p).is_integer():
            raise ValueError(f"({x}) ** {p} is not a real number: a negative base needs an integer exponent")
        # \partial x^p / \partial x = p x^{p-1}
        return Value(x**p, (self,), (p * x ** (p - 1),), f"**{p}")

    def exp(self) -> Value:
        try:
            e = math.exp(self.data)
        except OverflowError:
            raise OverflowError(f"exp({self.data}) overflows a float") from None
        # \partial e^x / \partial x = e^x
        return Value(e, (self,), (e,), "exp")

    def log(self) -> Value:
        x = self.data
        if x <= 0.0:
            raise ValueError(f"log needs a positive input, got {x}")
        # \partial \log x / \partial x = 1 / x
        return Value(math.log(x), (self,), (1.0 / x,), "log")

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        # \partial \tanh x / \partial x = 1 - \tanh^2 x
        return Value(t, (self,), (1.0 - t * t,), "tanh")

    def relu(self) -> Value:
        positive = self.data > 0.0
        # \max(0, x),  \partial / \partial x = \mathbb{1}[x > 0]  (0 at x = 0, as in torch)
        return Value(self.data if positive else 0.0, (self,), (1.0 if positive else 0.0,), "relu")

    def sigmoid(self) -> Value:
        # \sigma(x) = 1 / (1 + e^{-x}), written with e^{-|x|} so that no exponential overflows
        e = math.exp(-abs(self.data))
        s = 1.0 / (1.0 + e) if self.data >= 0 else e / (1.0 + e)
        # \partial \sigma(x) / \partial x = \sigma(x) (1 - \sigma(x))
        return Value(s, (self,), (s * (1.0 - s),), "sigmoid")

    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other) -> Value:
        return self + (-_lift(other))

    def __radd__(self, other) -> Value:
        return self + other

    def __rsub__(self, other) -> Value:
        return _lift(other) - self

    def __rmul__(self, other) -> Value:
        return self * other

    def __rtruediv__(self, other) -> Value:
        return _lift(other) / self

    def backward(self) -> None:
        """Add d(self)/d(v) to `v.grad` for every leaf v this one depends on. As in torch, leaves
        accumulate (zero them between steps); an intermediate node's grad is its adjoint afresh."""
        order = topological_order(self)
        for v in order:
            if v.inputs:
                v.grad = 0.0
        # \bar y = 1
        self.grad += 1.0
        for v in reversed(order):  # each node after every node that was made from it
            for u, d in zip(v.inputs, v.local_grads):
                # \bar u \mathrel{+}= \bar v \, \partial v / \partial u
                u.grad += v.grad * d


def _lift(x) -> Value:
    if isinstance(x, Value):
        return x
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise TypeError(f"a Value combines with Values, ints and floats, not {type(x).__name__}")
    return Value(x)


def topological_order(root: Value) -> list[Value]:
    """Every node reachable from `root`, each after all of its inputs (iterative: deep graphs
    such as a long sum would overflow Python's recursion limit)."""
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        v, inputs_done = stack.pop()
        if inputs_done:
            order.append(v)
            continue
        if id(v) in seen:
            continue
        seen.add(id(v))
        stack.append((v, True))
        stack.extend((u, False) for u in v.inputs if id(u) not in seen)
    return order


class ScalarMLP:
    """An MLP of Values: tanh hidden layers, a linear output. Weights as in torch.nn.Linear's default."""

    def __init__(self, sizes: list[int], rng: random.Random):
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ValueError(f"sizes must be at least [n_in, n_out] of positive ints, got {sizes}")
        self.sizes = list(sizes)
        self.layers = []  # per layer: W as `out` rows of `in` Values, b as `out` Values
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(n_in)  # W_{ij}, b_i \sim \mathcal{U}(-1/\sqrt{n_{in}}, 1/\sqrt{n_{in}})
            w = [[Value(rng.uniform(-bound, bound)) for _ in range(n_in)] for _ in range(n_out)]
            b = [Value(rng.uniform(-bound, bound)) for _ in range(n_out)]
            self.layers.append((w, b))

    def __call__(self, x: list[float]) -> list[Value]:
        h = x
        for i, (w, b) in enumerate(self.layers):
            # z_j = \sum_i W_{ji} h_i + b_j
            z = [sum((w_ji * h_i for w_ji, h_i in zip(row, h)), b_j) for row, b_j in zip(w, b)]
            # h = \tanh(z) between layers; the last layer's z are the logits
            h = z if i == len(self.layers) - 1 else [z_j.tanh() for z_j in z]
        return h

    def parameters(self) -> list[Value]:
        """In torch's order: each layer's weight (row-major), then its bias."""
        return [p for w, b in self.layers for p in (*(v for row in w for v in row), *b)]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = 0.0


def bce_with_logits(z: Value, y: int) -> Value:
    # \ell = -[y \log\sigma(z) + (1 - y) \log(1 - \sigma(z))],  with 1 - \sigma(z) = \sigma(-z)
    return -(z.sigmoid().log() if y == 1 else (-z).sigmoid().log())


def mean_loss(model: ScalarMLP, x: list[list[float]], y: list[int]) -> Value:
    # \mathcal{L} = \frac1N \sum_n \ell(f(x_n), y_n)
    return sum((bce_with_logits(model(xn)[0], yn) for xn, yn in zip(x, y)), Value(0.0)) / len(x)


def accuracy(model: ScalarMLP, x: list[list[float]], y: list[int]) -> float:
    return sum((model(xn)[0].data > 0) == bool(yn) for xn, yn in zip(x, y)) / len(x)


def torch_loss_and_grads(model: ScalarMLP, x: list[list[float]], y: list[int]) -> tuple[float, list[float]]:
    """The same network and loss in torch float64, differentiated by torch.autograd: the reference."""
    weights = [(torch.tensor([[v.data for v in row] for row in w], dtype=torch.float64, requires_grad=True),
                torch.tensor([v.data for v in b], dtype=torch.float64, requires_grad=True))
               for w, b in model.layers]  # (out, in), (out,)
    h = torch.tensor(x, dtype=torch.float64)  # (N, n_in)
    for i, (w, b) in enumerate(weights):
        h = h @ w.T + b
        if i < len(weights) - 1:
            h = torch.tanh(h)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(h[:, 0], torch.tensor(y, dtype=torch.float64))
    params = [t for pair in weights for t in pair]
    grads = torch.autograd.grad(loss, params)
    return loss.item(), torch.cat([g.reshape(-1) for g in grads]).tolist()  # in model.parameters() order


def finite_difference_grads(model: ScalarMLP, x: list[list[float]], y: list[int], h: float) -> list[float]:
    """Central differences, one parameter at a time: (L(w + h) - L(w - h)) / 2h, error O(h^2)."""
    grads = []
    for p in model.parameters():
        w = p.data
        p.data = w + h
        up = mean_loss(model, x, y).data
        p.data = w - h
        down = mean_loss(model, x, y).data
        p.data = w
        # \partial \mathcal{L} / \partial w \approx (\mathcal{L}(w + h) - \mathcal{L}(w - h)) / 2h
        grads.append((up - down) / (2 * h))
    return grads


@contextmanager
def cyclic_gc_paused():
    """A graph of Values has no reference cycles, so reference counting frees it; Python's cyclic
    collector would only rescan its thousands of live nodes again and again (half the run time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class GradientCheckConfig:
    n_train: int = 64
    n_test: int = 200
    hidden: int = 8
    depth: int = 2  # hidden layers
    steps: int = 150
    lr: float = 0.2
    momentum: float = 0.9
    check_every: int = 10
    fd_h: float = 1e-5


@lab(
    "autodiff/gradient-check",
    card="autodiff",
    config=GradientCheckConfig,
    scales={
        "quick": {"n_train": 24, "n_test": 50, "hidden": 4, "steps": 20, "check_every": 10},
        "default": {},
        "full": {"n_train": 200, "n_test": 1000, "hidden": 16, "steps": 500},
    },
    goals=[
        Goal("train_acc", ">=", 0.95),
        Goal("test_acc", ">=", 0.9),
        Goal("max_grad_diff_torch", "<=", 1e-10),
        Goal("max_grad_diff_fd", "<=", 1e-6),
    ],
    claims=[
        Check(
            "autodiff-automatic-gradients",
            lambda m: m["max_grad_diff_torch"] <= 1e-10 and m["max_grad_diff_fd"] <= 1e-6,
            "at {n_checks} points of training the scalar engine's {n_params} gradients differ from "
            "torch.autograd's by at most {max_grad_diff_torch:.1e} (float64), and at the first and last step "
            "from central differences by at most {max_grad_diff_fd:.1e}; the net it trains reaches train "
            "accuracy {train_acc:.3f}",
        ),
        Check(
            "backpropagation-exact-gradients",
            lambda m: m["max_grad_diff_fd"] <= 1e-6,
            "one backward sweep gives all {n_params} gradients of the loss; they agree with "
            "finite-difference derivatives to {max_grad_diff_fd:.1e} (largest gradient {max_abs_grad:.2f})",
        ),
    ],
    budget_s=30,
    threads=1,
)
def gradient_check(run, cfg: GradientCheckConfig) -> dict:
    """A scalar autodiff engine trains an MLP on two moons; its gradients match torch.autograd's."""
    data = toy_split("moons", cfg.n_train, cfg.n_test, seed=run.seed)
    x_train, y_train = data.x_train.double().tolist(), data.y_train.tolist()  # plain Python floats and ints
    x_test, y_test = data.x_test.double().tolist(), data.y_test.tolist()
    model = ScalarMLP([2, *[cfg.hidden] * cfg.depth, 1], random.Random(run.seed))
    params = model.parameters()
    velocity = [0.0] * len(params)

    # torch.autograd is checked every `check_every` steps; finite differences (two forward passes
    # per parameter) only at the start and the end of training, since they cost as much as 2P steps
    history, diffs_fd, max_abs_grad = [], [], 0.0
    start = time.perf_counter()
    with cyclic_gc_paused():
        for step in run.progress(range(cfg.steps + 1), desc="scalar engine"):
            loss = mean_loss(model, x_train, y_train)
            model.zero_grad()
            loss.backward()
            grads = [p.grad for p in params]
            if step % cfg.check_every == 0 or step == cfg.steps:
                ref_loss, ref_grads = torch_loss_and_grads(model, x_train, y_train)
                diff_torch = max(abs(g - r) for g, r in zip(grads, ref_grads))
                max_abs_grad = max(max_abs_grad, *map(abs, grads))
                history.append((step, loss.data, diff_torch, abs(loss.data - ref_loss)))
                run.log(step, loss=loss.data, grad_diff_torch=diff_torch)
            if step in (0, cfg.steps):
                fd_grads = finite_difference_grads(model, x_train, y_train, cfg.fd_h)
                diffs_fd.append((step, max(abs(g - f) for g, f in zip(grads, fd_grads))))
            if step == cfg.steps:
                break  # the last pass only measures
            for i, (p, g) in enumerate(zip(params, grads)):
                # heavy-ball momentum: v \leftarrow \mu v + \partial \mathcal{L} / \partial w,   w \leftarrow w - \eta v
                velocity[i] = cfg.momentum * velocity[i] + g
                p.data -= cfg.lr * velocity[i]
    seconds = time.perf_counter() - start

    metrics = {
        "train_acc": accuracy(model, x_train, y_train),
        "test_acc": accuracy(model, x_test, y_test),
        "final_loss": history[-1][1],
        "max_grad_diff_torch": max(row[2] for row in history),
        "max_grad_diff_fd": max(d for _, d in diffs_fd),
        "max_loss_diff_torch": max(row[3] for row in history),
        "max_abs_grad": max_abs_grad,
        "n_params": len(params),
        "n_checks": len(history),
        "graph_nodes": len(topological_order(loss)),
        "train_seconds": seconds,
    }
    _plot(run, model, x_train, y_train, history, diffs_fd)
    return metrics


def _plot(run, model: ScalarMLP, x: list[list[float]], y: list[int], history: list, diffs_fd: list) -> None:
    with run.figure("gradient_check", ncols=2) as (fig, (ax_b, ax_c)):
        xs = torch.tensor(x)
        lo, hi = xs.min(0).values - 0.5, xs.max(0).values + 0.5
        g0, g1 = torch.meshgrid(torch.linspace(lo[0], hi[0], 50), torch.linspace(lo[1], hi[1], 50), indexing="xy")
        z = torch.tensor([model(p)[0].data for p in torch.stack([g0.ravel(), g1.ravel()], 1).tolist()])
        ax_b.contourf(g0, g1, z.reshape(g0.shape) > 0, levels=[-0.5, 0.5, 1.5], colors=["#dbe9f6", "#f6dbdb"])
        ax_b.scatter(xs[:, 0], xs[:, 1], c=["#1f77b4" if t == 0 else "#d62728" for t in y], s=18, edgecolors="k")
        ax_b.set_title("scalar-engine MLP on two moons")
        steps, losses, d_torch, _ = zip(*history)
        tiny = 1e-18  # a difference of exactly 0 still shows on the log axis
        ax_c.plot(steps, losses, "k-", label="training loss (BCE)")
        ax_c.plot(steps, [max(d, tiny) for d in d_torch], "o-", label="max |grad - torch.autograd|")
        ax_c.plot(*zip(*[(s, max(d, tiny)) for s, d in diffs_fd]), "s", label="max |grad - finite difference|")
        ax_c.set(yscale="log", xlabel="step", title="gradients checked during training")
        ax_c.legend(fontsize=7)
