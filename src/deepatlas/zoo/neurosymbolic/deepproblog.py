"""DeepProbLog: ProbLog whose probabilistic facts can come from a neural network.

A neural predicate `nn(net, [X], Y, [0..9]) :: digit(X, Y)` turns an input X (an image) into an
annotated disjunction over digit(X, 0), ..., digit(X, 9) whose probabilities are the network's
softmax. The logic stays exact: a query such as addition(a, b, 7) is grounded and compiled once into a
decision diagram, and its probability is a weighted model count over the softmax outputs, a
polynomial in them that autograd differentiates. So a digit classifier trains from the sum of two
images alone: the program says how digits make sums, the loss only sees sums.

    P(\\mathrm{addition}(x, y, z)) = \\sum_{n_1 + n_2 = z} p_\\theta(n_1 | x)\\, p_\\theta(n_2 | y),
    \\mathcal{L}(\\theta) = -\\sum_{(x, y, z)} \\log P(\\mathrm{addition}(x, y, z))

Manhaeve, Dumančić, Kimmig, Demeester & De Raedt, "DeepProbLog: Neural Probabilistic Logic
Programming", NeurIPS 2018 (arXiv 1805.10872).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.mnist_addition import mnist_addition
from deepatlas.labs import Check, Goal, lab
from deepatlas.registry import register_model
from deepatlas.zoo.neurosymbolic.problog import Program

ADDITION = "addition(X, Y, Z) :- digit(X, N1), digit(Y, N2), Z is N1 + N2."


class DigitNet(nn.Module):
    """The paper's MNIST network: two 5x5 convolutions with max pooling, three linear layers, logits out."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(256, 120), nn.Linear(120, 84), nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28) -> (B, classes)
        h = F.relu(F.max_pool2d(self.conv1(x), 2))  # (B, 6, 12, 12)
        h = F.relu(F.max_pool2d(self.conv2(h), 2)).flatten(1)  # (B, 256)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(h)))))


class DeepProbLog(nn.Module):
    """A ProbLog program with one neural predicate `name(Input, Value)` and a fixed list of queries.

    `inputs` are the constants that stand for the network's inputs in the queries (a, b): each becomes
    an annotated disjunction name(a, v), v in `domain`, with weights from the network. The queries are
    compiled once at construction; forward(*xs) evaluates them all on a batch: (B, n_queries).
    """

    def __init__(self, program: str, net: nn.Module, name: str, domain: list, inputs: tuple[str, ...],
                 queries: list[str]):
        super().__init__()
        self.net, self.domain, self.inputs = net, list(domain), tuple(inputs)
        prog = Program.parse(program)
        # nn(net, [X], Y, domain) :: name(X, Y), grounded for every input constant X
        self.choice = {x: prog.add_choice([(name, x, v) for v in self.domain], None, name=x) for x in self.inputs}
        self.queries = list(queries)
        self.circuits = [prog.compile(q) for q in self.queries]

    def neural_weights(self, *xs: torch.Tensor) -> tuple[dict[int, torch.Tensor], list[torch.Tensor]]:
        """Each input's softmax (B, K), and the choice weights (B, K + 1): 'none of them' has probability 0."""
        if len(xs) != len(self.inputs):
            raise ValueError(f"expected {len(self.inputs)} inputs ({', '.join(self.inputs)}), got {len(xs)}")
        probs = [F.softmax(self.net(x), dim=-1) for x in xs]  # each (B, K)
        weights = {self.choice[name]: F.pad(p, (0, 1)) for name, p in zip(self.inputs, probs)}
        return weights, probs

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:  # each (B, ...) -> (B, n_queries)
        weights, _ = self.neural_weights(*xs)
        return torch.stack([c.evaluate(weights) for c in self.circuits], dim=-1)


def mnist_addition_model(net: nn.Module | None = None) -> DeepProbLog:
    """addition(a, b, z) for z = 0..18 over two images a and b."""
    return DeepProbLog(ADDITION, net or DigitNet(), "digit", list(range(10)), ("a", "b"),
                       [f"addition(a, b, {z})" for z in range(19)])


@register_model("deepproblog-addition", card="deepproblog",
                example=lambda: (torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28)))
def deepproblog_addition() -> DeepProbLog:
    return mnist_addition_model()


# --- deepproblog/mnist-addition: digits learned from sums ---------------------------------------

@dataclass
class AdditionConfig:
    pairings: int = 3  # each training image appears in this many pairs
    n_train: int = 0  # use only the first n_train pairs (0: all of them)
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-3  # Adam


@lab(
    "deepproblog/mnist-addition",
    card="deepproblog",
    config=AdditionConfig,
    scales={"quick": {"pairings": 1, "n_train": 320, "epochs": 1, "batch_size": 32}, "default": {},
            "full": {"pairings": 8, "epochs": 4}},
    goals=[Goal("sum_acc", ">=", 0.9)],
    claims=[
        Check(
            "deepproblog-differentiable-reasoning",
            lambda m: m["digit_acc"] >= 0.9,
            "trained only on the sums of {n_train} image pairs through the exact probability of "
            "addition(a, b, z), the digit classifier labels {digit_acc:.3f} of 1,000 held-out single digits "
            "correctly (chance 0.1, never shown a digit label); held-out sum accuracy {sum_acc:.3f}",
        ),
    ],
    budget_s=90,
    threads=1,
)
def addition(run, cfg: AdditionConfig) -> dict:
    """DeepProbLog on MNIST-addition: sum accuracy of at least 0.9 from sum labels only."""
    data = mnist_addition(pairings=cfg.pairings, seed=run.seed).to(run.device)
    torch.manual_seed(run.seed)
    model = mnist_addition_model().to(run.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(run.seed)
    n = cfg.n_train or len(data.x_train)
    x, z = data.x_train[:n], data.y_train[:n]  # (N, 2, 1, 28, 28), (N,)
    steps_per_epoch = len(x) // cfg.batch_size
    curve = {"step": [], "digit_acc": []}
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(x), generator=g).to(run.device)
        for i in run.progress(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}"):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            p_sum = model(x[idx, 0], x[idx, 1])  # (B, 19)
            # \mathcal{L} = -\log P(\mathrm{addition}(a, b, z))
            loss = -torch.log(p_sum.gather(1, z[idx, None]).clamp_min(1e-12)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step = epoch * steps_per_epoch + i + 1
            if step % 25 == 0:
                run.log(step, loss=loss)
            if step % 100 == 0:
                curve["step"].append(step)
                curve["digit_acc"].append(_digit_accuracy(model, data))
    train_s = time.perf_counter() - t0

    model.eval()
    with torch.no_grad():
        p_sum = model(data.x_test[:, 0], data.x_test[:, 1])  # (N_test, 19)
        sum_acc = (p_sum.argmax(1) == data.y_test).float().mean().item()
        pred = model.net(data.x_test.flatten(0, 1)).argmax(1).reshape(-1, 2)  # (N_test, 2)
        confusion = torch.zeros(10, 10)
        confusion.index_put_((data.meta["digits_test"].flatten(), pred.flatten().cpu()), torch.ones(pred.numel()),
                             accumulate=True)
    digit_acc = _digit_accuracy(model, data)
    with run.figure("mnist_addition", ncols=2) as (fig, (ax_c, ax_m)):
        ax_c.plot(curve["step"], curve["digit_acc"], "o-")
        ax_c.set(xlabel="step", ylabel="held-out digit accuracy", ylim=(0, 1),
                 title="digits learned from sums only")
        ax_m.imshow(confusion / confusion.sum(1, keepdim=True), cmap="Blues")
        ax_m.set(xlabel="predicted digit", ylabel="true digit", title="digit confusion (held-out)",
                 xticks=range(10), yticks=range(10))
    return {"sum_acc": sum_acc, "digit_acc": digit_acc, "n_train": len(x), "epochs": cfg.epochs,
            "train_s": train_s, "final_loss": loss.item()}


def _digit_accuracy(model: DeepProbLog, data) -> float:
    """Accuracy of the neural predicate on the held-out images, one digit at a time."""
    with torch.no_grad():
        pred = model.net(data.x_test.flatten(0, 1)).argmax(1)  # (2 N_test,)
    return (pred.cpu() == data.meta["digits_test"].flatten()).float().mean().item()
