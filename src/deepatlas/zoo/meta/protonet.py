"""Prototypical networks: few-shot classification by distance to class means in a learned embedding.

Embed the K labelled support examples of each of the N classes of an episode; each class's
prototype is the mean of its embeddings; a query goes to the class whose prototype is nearest in
squared Euclidean distance (a softmax over negative distances). The embedding is trained on
episodes that look like the test episodes, so it learns to place examples of one class close
together even for classes it has never seen.

    c_k = \\frac{1}{|S_k|} \\sum_{(x_i, y_i) \\in S_k} f_\\phi(x_i),
    p_\\phi(y = k \\mid x) = \\frac{\\exp(-\\|f_\\phi(x) - c_k\\|^2)}{\\sum_{k'} \\exp(-\\|f_\\phi(x) - c_{k'}\\|^2)}

Snell, Swersky & Zemel, "Prototypical Networks for Few-shot Learning", NeurIPS 2017.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data import split_seeds
from deepatlas.data.fewshot import TEST_CLASSES, TRAIN_CLASSES, dihedral, digit_pool, sample_episodes
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.conv import conv_bn_act
from deepatlas.optim.optimizers import Adam
from deepatlas.registry import register_model


def conv_embedding(in_channels: int = 1, width: int = 64, blocks: int = 3) -> nn.Sequential:
    """The paper's embedding: blocks of 3x3 conv (width), BatchNorm, ReLU, 2x2 max-pool, then flatten.
    Three blocks take an 8x8 digit to width x 1 x 1."""
    layers = []
    for i in range(blocks):
        layers += [conv_bn_act(in_channels if i == 0 else width, width), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten())


def prototypes(z_support: torch.Tensor) -> torch.Tensor:
    """c_k = mean of the support embeddings of class k: (B, N, K, D) -> (B, N, D)."""
    return z_support.mean(2)


def squared_distances(z_query: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """\\|f(x) - c_k\\|^2 for queries (B, M, D) and prototypes (B, N, D) -> (B, M, N)."""
    return (z_query[:, :, None] - c[:, None]).square().sum(-1)


class ProtoNet(nn.Module):
    """forward(support (B, N, K, *x), query (B, M, *x)) -> logits (B, M, N) = -squared distance to each prototype."""

    def __init__(self, embedding: nn.Module):
        super().__init__()
        self.embedding = embedding

    def forward(self, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        B, N, K = support.shape[:3]
        z_s = self.embedding(support.flatten(0, 2)).view(B, N, K, -1)  # (B, N, K, D)
        z_q = self.embedding(query.flatten(0, 1)).view(B, query.shape[1], -1)  # (B, M, D)
        # \log p(y = k \mid x) \propto -\|f_\phi(x) - c_k\|^2
        return -squared_distances(z_q, prototypes(z_s))


@register_model("protonet-conv", card="protonet",
                example=lambda: (torch.randn(2, 3, 2, 1, 8, 8), torch.randn(2, 4, 1, 8, 8)))
def protonet_conv(width: int = 64, blocks: int = 3) -> ProtoNet:
    return ProtoNet(conv_embedding(1, width, blocks))


def episode_loss(logits: torch.Tensor, n_query: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy and accuracy for queries laid out class by class (N blocks of n_query): logits (B, M, N)."""
    N = logits.shape[-1]
    y = torch.arange(N, device=logits.device).repeat_interleave(n_query).expand(logits.shape[0], -1)  # (B, M)
    # \mathcal{L} = -\log p_\phi(y = k \mid x)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    return loss, logits.argmax(-1).eq(y).float().mean()


# --- protonet/few-shot-digits: 5-way 1- and 5-shot on digit classes never seen in training -------

@dataclass
class FewShotDigitsConfig:
    n_way: int = 5  # classes per test episode
    train_way: int = 20  # classes per training episode (the paper trains with more ways than it tests)
    k_train: int = 5  # shots of the training episodes (one model, tested at 1 and 5 shots)
    n_query: int = 5  # queries per class and training episode
    steps: int = 150
    batch: int = 4  # episodes per step
    lr: float = 1e-3  # Adam
    width: int = 32
    n_test: int = 600  # test episodes per shot setting, 10 queries per class


@torch.no_grad()
def evaluate(net: ProtoNet, pool, n_way: int, k_shot: int, n_query: int, n_episodes: int, seed: int,
             device) -> float:
    """Mean query accuracy over n_episodes test episodes (drawn 100 at a time)."""
    g = torch.Generator().manual_seed(seed)
    right = 0.0
    for start in range(0, n_episodes, 100):
        ep = sample_episodes(pool, min(100, n_episodes - start), n_way, k_shot, n_query, g)
        query = ep.query.flatten(1, 2).to(device)  # (B, N * Q, 1, s, s), class by class
        right += episode_loss(net(ep.support.to(device), query), n_query)[1].item() * len(query)
    return right / n_episodes


def pixel_prototypes(support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """The same rule with no learning: prototypes and distances in pixel space -> logits (B, M, N)."""
    return -squared_distances(query.flatten(2), prototypes(support.flatten(3)))


@lab(
    "protonet/few-shot-digits",
    card="protonet",
    config=FewShotDigitsConfig,
    scales={
        "quick": {"steps": 5, "n_test": 20, "width": 8, "train_way": 5},
        "default": {},
        "full": {"steps": 5000, "width": 64, "n_test": 2000},
    },
    goals=[Goal("acc_1shot", ">=", 0.5), Goal("acc_5shot", ">=", 0.7)],  # 2.5x and 3.5x chance
    claims=[
        Check(
            "protonet-few-shot",
            lambda m: m["acc_1shot"] > m["pixel_acc_1shot"] and m["acc_5shot"] > m["pixel_acc_5shot"],
            f"trained on episodes of the digits {TRAIN_CLASSES} (and their rotations and reflections) only, the "
            f"prototypical network labels queries of the never-seen digits {TEST_CLASSES} in "
            "{n_way}-way episodes with accuracy {acc_1shot:.3f} from one example a class and {acc_5shot:.3f} from five "
            "(chance {chance:.2f}); on the training digits {train_classes_acc_1shot:.3f} and "
            "{train_classes_acc_5shot:.3f}. The same nearest-prototype rule on raw pixels, with no learning, scores "
            "{pixel_acc_1shot:.3f} and {pixel_acc_5shot:.3f} on the held-out digits. Rule: supported if the learned "
            "embedding beats raw pixels at both one and five shots",
        ),
    ],
    budget_s=60,
    threads=1,
)
def few_shot_digits(run, cfg: FewShotDigitsConfig) -> dict:
    """A prototypical network on 8x8 digits: N-way 1-shot and 5-shot accuracy on held-out classes."""
    train_seed, test_seed = split_seeds(run.seed)
    # the 5 training digits under the 8 rotations and reflections of the square: 40 training classes
    train_pool, test_pool = dihedral(digit_pool(TRAIN_CLASSES)), digit_pool(TEST_CLASSES)
    torch.manual_seed(train_seed)
    net = protonet_conv(cfg.width).to(run.device)
    opt = Adam(net.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(train_seed)
    curve = []
    for step in run.progress(range(cfg.steps), desc="episodes"):
        ep = sample_episodes(train_pool, cfg.batch, cfg.train_way, cfg.k_train, cfg.n_query, g)
        logits = net(ep.support.to(run.device), ep.query.flatten(1, 2).to(run.device))
        loss, acc = episode_loss(logits, cfg.n_query)
        opt.zero_grad()
        loss.backward()
        opt.step()
        curve.append(loss.item())
        if (step + 1) % 10 == 0:
            run.log(step + 1, loss=loss.detach(), train_acc=acc)
    net.eval()
    metrics: dict = {"n_way": cfg.n_way, "chance": 1 / cfg.n_way}
    for k in (1, 5):
        metrics[f"acc_{k}shot"] = evaluate(net, test_pool, cfg.n_way, k, 10, cfg.n_test, test_seed, run.device)
        metrics[f"train_classes_acc_{k}shot"] = evaluate(net, digit_pool(TRAIN_CLASSES), cfg.n_way, k, 10,
                                                         cfg.n_test, test_seed, run.device)
        ep = sample_episodes(test_pool, cfg.n_test, cfg.n_way, k, 10, torch.Generator().manual_seed(test_seed))
        metrics[f"pixel_acc_{k}shot"] = episode_loss(pixel_prototypes(ep.support, ep.query.flatten(1, 2)), 10)[1].item()
    _plot(run, net, test_pool, cfg, curve, metrics, test_seed)
    return metrics


def _plot(run, net: ProtoNet, pool, cfg: FewShotDigitsConfig, curve: list[float], metrics: dict, seed: int) -> None:
    ep = sample_episodes(pool, 1, cfg.n_way, 5, 30, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        z = net.embedding(torch.cat([ep.support[0].flatten(0, 1), ep.query[0].flatten(0, 1)]).to(run.device)).cpu()
    z = z - z.mean(0)
    pcs = z @ torch.linalg.svd(z, full_matrices=False).Vh[:2].T  # (n, 2) principal components
    n_s = cfg.n_way * 5
    labels = torch.arange(cfg.n_way).repeat_interleave(5).tolist() + torch.arange(cfg.n_way).repeat_interleave(30).tolist()
    with run.figure("few_shot_digits", ncols=2, size=(10, 4)) as (fig, (ax_loss, ax_emb)):
        ax_loss.plot(curve)
        ax_loss.set(xlabel="training step", ylabel="episode cross-entropy", yscale="log",
                    title=f"trained on {TRAIN_CLASSES}: 1-shot {metrics['acc_1shot']:.2f}, "
                          f"5-shot {metrics['acc_5shot']:.2f} on {TEST_CLASSES}")
        colours = [f"C{c}" for c in labels]
        ax_emb.scatter(pcs[n_s:, 0], pcs[n_s:, 1], c=colours[n_s:], s=8, alpha=0.5)
        for c in range(cfg.n_way):
            proto = pcs[c * 5:(c + 1) * 5].mean(0)
            ax_emb.scatter(*proto, c=f"C{c}", marker="*", s=250, edgecolors="k",
                           label=f"prototype of digit {ep.classes[0, c].item()}")
        ax_emb.set(title="held-out digits in the embedding (PCA)", xticks=[], yticks=[])
        ax_emb.legend(fontsize=7)
