"""Neural theorem prover: Prolog's backward chaining with soft unification over learned symbol embeddings.

To prove a query r(a, b) the prover tries every fact and every rule, as Prolog does, but two
predicate symbols unify to a degree: a radial basis kernel of the distance between their
embeddings. A proof scores the minimum of its unification scores, the query the maximum over its
proofs, so the whole proof search is a differentiable network. Rules are templates whose predicate
symbols are free vectors (`#1(X, Y) :- #2(X, Z), #3(Z, Y)`); training pulls them next to the
relations that make the known facts provable, and the nearest symbols read back as rules.

    \\kappa(\\mathbf{e}_a, \\mathbf{e}_b) = \\exp\\big(-\\|\\mathbf{e}_a - \\mathbf{e}_b\\|_2 / (2\\mu^2)\\big),\\quad
    s(\\pi) = \\min_{(a, b) \\in \\pi} \\kappa(\\mathbf{e}_a, \\mathbf{e}_b),\\quad s(q) = \\max_{\\pi \\in \\Pi(q)} s(\\pi)

Rocktäschel & Riedel, "End-to-end Differentiable Proving", NIPS 2017 (arXiv 1705.11040).

What is kept from the paper: soft unification of predicate symbols with the RBF kernel (mu = 1/sqrt(2)),
min over a proof and max over proofs, the three rule templates of its kinship experiments (the same,
the inverse and the two-hop chain of relations), masking a training fact when it is the query, and the
cross-entropy loss on known facts against corrupted ones. What is simplified: constants unify exactly
(the paper embeds and soft-unifies them too), and proofs have depth one (a rule's body atoms are proved
from facts, not by further rules), which lets every proof of a batch of queries be computed as tensors.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from deepatlas.data.kinship import DERIVED, RULES, corrupt, kinship
from deepatlas.labs import Check, Goal, lab
from deepatlas.nn.losses import binary_cross_entropy_with_logits
from deepatlas.registry import register_model
from deepatlas.zoo.neurosymbolic.ltn import Not, RelationalLTN, SatAgg, definition_truth, rule_truth

TEMPLATES = {"same": 1, "inverse": 1, "chain": 2}  # body atoms: #1(X,Y) :- #2(X,Y) | #2(Y,X) | #2(X,Z), #3(Z,Y)


def rbf_unify(a: torch.Tensor, b: torch.Tensor, mu: float = 1 / math.sqrt(2)) -> torch.Tensor:
    """Soft unification of every symbol in a (..., M, k) with every one in b (..., N, k): (..., M, N)."""
    # \kappa(e_a, e_b) = \exp(-\|e_a - e_b\|_2 / (2 \mu^2))
    d = (a[..., :, None, :] - b[..., None, :, :]).pow(2).sum(-1).clamp_min(1e-12).sqrt()
    return torch.exp(-d / (2 * mu**2))


class NTP(nn.Module):
    """A neural theorem prover over a fixed knowledge base of (relation, head, tail) facts.

    forward(queries (Q, 3)) -> (Q,) proof scores in [0, 1]: the best of proving the query directly from
    a fact, or through one of the rule templates whose bodies are proved from facts.
    """

    def __init__(self, facts: torch.Tensor, n_entities: int, n_relations: int, dim: int = 20,
                 rules_per_template: int = 6, mu: float = 1 / math.sqrt(2), generator: torch.Generator | None = None):
        super().__init__()
        if facts.dim() != 2 or facts.shape[1] != 3:
            raise ValueError(f"facts must be (N, 3) (relation, head, tail) triples, got {tuple(facts.shape)}")
        kb = torch.zeros(n_relations, n_entities, n_entities)
        kb[facts[:, 0], facts[:, 1], facts[:, 2]] = 1.0
        self.register_buffer("kb", kb)  # (R, E, E): 1 where the fact is known
        self.mu = mu
        self.rel = nn.Parameter(torch.randn(n_relations, dim, generator=generator))  # (R, k) predicate symbols
        # one parameter block per template: (n, 1 + body atoms, k), the head symbol first
        self.rules = nn.ParameterDict({
            name: nn.Parameter(torch.randn(rules_per_template, 1 + n_body, dim, generator=generator))
            for name, n_body in TEMPLATES.items()})

    def unify(self, a: torch.Tensor) -> torch.Tensor:
        """Soft unification of symbols a (..., k) with every relation: (..., R)."""
        return rbf_unify(a[..., None, :], self.rel)[..., 0, :]

    def soft_kb(self, symbols: torch.Tensor) -> torch.Tensor:
        """symbols (M, k) -> (M, E, E): the best fact f(x, y) for the body atom #(x, y), max_f kappa(#, f)."""
        k = self.unify(symbols)  # (M, R)
        return (k[:, :, None, None] * self.kb).amax(1)

    def proof_scores(self, queries: torch.Tensor) -> dict[str, torch.Tensor]:
        """The best proof of each query (Q, 3) by a fact and by each rule template: name -> (Q,)."""
        r, a, b = queries.unbind(1)
        # facts f(a, b) other than the query itself, which is masked when it is in the KB
        own = torch.nn.functional.one_hot(r, self.kb.shape[0]).to(self.kb.dtype)  # (Q, R)
        facts_ab = self.kb[:, a, b].T * (1 - own)  # (Q, R)
        q = self.rel[r]  # (Q, k)
        # proof by a fact: s = \kappa(r, f)
        scores = {"fact": (self.unify(q) * facts_ab).amax(1)}
        for name, theta in self.rules.items():
            head = rbf_unify(q, theta[:, 0])  # (Q, n): \kappa(r, \#1)
            if name == "same":  # \#2(a, b)
                body = (self.unify(theta[:, 1])[None] * facts_ab[:, None]).amax(2)  # (Q, n)
            elif name == "inverse":  # \#2(b, a)
                body = self.soft_kb(theta[:, 1])[:, b, a].T  # (Q, n)
            else:  # \max_z \min(\#2(a, z), \#3(z, b))
                first = self.soft_kb(theta[:, 1])[:, a].transpose(0, 1)  # (Q, n, E): \#2(a, z)
                second = self.soft_kb(theta[:, 2])[:, :, b].permute(2, 0, 1)  # (Q, n, E): \#3(z, b)
                body = torch.minimum(first, second).amax(2)
            # s(\pi) = \min(\kappa(r, \#1), s(\text{body}))
            scores[name] = torch.minimum(head, body).amax(1)
        return scores

    def forward(self, queries: torch.Tensor) -> torch.Tensor:  # (Q, 3) -> (Q,)
        # s(q) = \max_\pi s(\pi)
        return torch.stack(list(self.proof_scores(queries).values()), 1).amax(1)

    def decode_rules(self, names: tuple[str, ...]) -> list[tuple[float, str]]:
        """Each rule template read back through its nearest relations: (min kappa, 'h(X,Y) :- ...')."""
        out = []
        with torch.no_grad():
            for name, theta in self.rules.items():
                k = self.unify(theta)  # (n, 1 + body, R)
                best, idx = k.max(-1)
                for conf, rel in zip(best.min(1).values.tolist(), idx.tolist()):
                    h, *body = [names[i] for i in rel]
                    text = {"same": f"{h}(X,Y) :- {body[0]}(X,Y)", "inverse": f"{h}(X,Y) :- {body[0]}(Y,X)",
                            "chain": f"{h}(X,Y) :- {body[0]}(X,Z), {body[-1]}(Z,Y)"}[name]
                    out.append((conf, text))
        return sorted(out, reverse=True)


@register_model("ntp", card="ntp", example=lambda: (torch.tensor([[0, 0, 1], [1, 2, 3], [0, 3, 2]]),))
def ntp(n_entities: int = 4, n_relations: int = 2, dim: int = 8) -> NTP:
    facts = torch.tensor([[0, 0, 1], [0, 1, 2], [1, 2, 3], [1, 0, 3]])
    return NTP(facts, n_entities, n_relations, dim, rules_per_template=2)


def bce(score: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of scores in [0, 1] (kept away from 0 and 1, where the log is infinite)."""
    s = score.clamp(1e-6, 1 - 1e-6)
    return binary_cross_entropy_with_logits(torch.log(s) - torch.log1p(-s), y)


# --- ntp/kinship: held-out kinship facts proved by learned rules (and by an LTN given the rules) -----

@dataclass
class KinshipConfig:
    n_families: int = 6
    dim: int = 20  # embedding size of both models
    rules_per_template: int = 8
    ntp_steps: int = 250
    ntp_lr: float = 0.02
    ltn_steps: int = 300
    ltn_lr: float = 0.02
    negatives: int = 2  # corrupted facts per known derived fact


@lab(
    "ntp/kinship",
    card="ntp",
    config=KinshipConfig,
    scales={"quick": {"n_families": 3, "ntp_steps": 40, "ltn_steps": 40, "rules_per_template": 4}, "default": {},
            "full": {"n_families": 12, "ntp_steps": 1500, "ltn_steps": 1500}},
    goals=[Goal("ntp_heldout_acc", ">=", 0.9)],
    claims=[
        Check(
            "ntp-symbols-and-embeddings",
            lambda m: m["ntp_heldout_acc"] >= 0.9 and m["ntp_heldout_acc"] > m["lookup_heldout_acc"] + 0.2,
            "on {n_test} held-out kinship facts and as many corrupted ones, the theorem prover with learned "
            "rule templates scores accuracy {ntp_heldout_acc:.3f} (ROC AUC {ntp_heldout_auc:.3f}) against "
            "{lookup_heldout_acc:.3f} for exact fact lookup; {ntp_multihop_frac:.2f} of the held-out facts it "
            "proves have their best proof through a two-hop rule",
        ),
        Check(
            "ltn-reasons-over-logic",
            lambda m: m["ltn_heldout_acc"] >= 0.9 and m["ltn_heldout_acc"] > m["ltn_facts_only_acc"],
            "given the kinship rules as axioms, the logic tensor network scores accuracy {ltn_heldout_acc:.3f} "
            "on the same held-out facts and negatives, against {ltn_facts_only_acc:.3f} for the same network "
            "trained on the facts alone",
        ),
    ],
    budget_s=90,
    threads=1,
)
def kinship_lab(run, cfg: KinshipConfig) -> dict:
    """Held-out kinship facts: a neural theorem prover learns the rules, an LTN is given them."""
    kb = kinship(n_families=cfg.n_families, seed=run.seed)
    E, R = len(kb.entities), len(kb.relations)
    g = torch.Generator().manual_seed(run.seed)
    known = {tuple(f) for f in kb.train.tolist()}
    derived_ids = [kb.relations.index(r) for r in DERIVED]
    train_derived = kb.train[torch.isin(kb.train[:, 0], torch.tensor(derived_ids))]
    test_neg = corrupt(kb.test, E, kb.all_facts(), g)  # true negatives, for evaluation only
    test_q = torch.cat([kb.test, test_neg])
    test_y = torch.cat([torch.ones(len(kb.test)), torch.zeros(len(test_neg))])

    def evaluate(scores: torch.Tensor) -> tuple[float, float]:
        acc = ((scores > 0.5).float() == test_y).float().mean().item()
        pos, neg = scores[test_y == 1], scores[test_y == 0]
        auc = ((pos[:, None] > neg[None]).float() + 0.5 * (pos[:, None] == neg[None]).float()).mean().item()
        return acc, auc

    # the neural theorem prover: learns rules from the known derived facts against corrupted ones
    t0 = time.perf_counter()
    prover = NTP(kb.train, E, R, cfg.dim, cfg.rules_per_template, generator=g).to(run.device)
    opt = torch.optim.Adam(prover.parameters(), lr=cfg.ntp_lr)
    for step in run.progress(range(cfg.ntp_steps), desc="NTP"):
        neg = corrupt(train_derived.repeat(cfg.negatives, 1), E, known, g)
        q = torch.cat([train_derived, neg])
        y = torch.cat([torch.ones(len(train_derived)), torch.zeros(len(neg))])
        # \mathcal{L} = -\sum_{(q, y)} y \log s(q) + (1 - y) \log(1 - s(q))
        loss = bce(prover(q), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0:
            run.log(step, ntp_loss=loss)
    ntp_s = time.perf_counter() - t0
    with torch.no_grad():
        ntp_scores = prover(test_q)
        lookup = prover.kb[test_q[:, 0], test_q[:, 1], test_q[:, 2]]  # exact fact lookup: 0 for held-out
        multihop = _best_proof_is_chain(prover, kb.test[ntp_scores[:len(kb.test)] > 0.5])
    ntp_acc, ntp_auc = evaluate(ntp_scores)
    rules = prover.decode_rules(kb.relations)

    # the logic tensor network: the same facts and negatives, plus the rules as axioms (or not)
    ltn = {}
    for with_rules in (True, False):
        ltn[with_rules] = _train_ltn(run, kb, cfg, known, with_rules, test_q, g)
    ltn_acc, ltn_auc = evaluate(ltn[True])
    facts_only_acc, _ = evaluate(ltn[False])

    with run.figure("kinship", ncols=2) as (fig, (ax_r, ax_b)):
        ax_r.axis("off")
        ax_r.set_title("rules the prover induced (nearest symbols)")
        for i, (conf, text) in enumerate(rules[:12]):
            ax_r.text(0.0, 1 - (i + 0.5) / 12, f"{conf:.2f}  {text}", family="monospace", fontsize=7,
                      transform=ax_r.transAxes)
        names = ["fact lookup", "NTP (learned rules)", "LTN facts only", "LTN + rules"]
        values = [evaluate(lookup)[0], ntp_acc, facts_only_acc, ltn_acc]
        ax_b.bar(names, values, color=["grey", "C0", "C1", "C2"])
        ax_b.axhline(0.9, color="k", ls="--", lw=1)
        ax_b.set(ylabel="held-out accuracy", ylim=(0, 1), title=f"{len(kb.test)} held-out facts + negatives")
        ax_b.tick_params(axis="x", labelrotation=20, labelsize=7)
    return {"ntp_heldout_acc": ntp_acc, "ntp_heldout_auc": ntp_auc, "lookup_heldout_acc": evaluate(lookup)[0],
            "ntp_multihop_frac": multihop, "ltn_heldout_acc": ltn_acc, "ltn_heldout_auc": ltn_auc,
            "ltn_facts_only_acc": facts_only_acc, "n_test": len(kb.test), "n_entities": E,
            "n_train_facts": len(kb.train), "ntp_train_s": ntp_s, "top_rule_kappa": rules[0][0]}


def _best_proof_is_chain(prover: NTP, facts: torch.Tensor) -> float:
    """The fraction of `facts` whose best proof goes through a two-hop (chain) rule."""
    if len(facts) == 0:
        return 0.0
    scores = prover.proof_scores(facts)
    best = torch.stack(list(scores.values()), 1).amax(1)
    return (scores["chain"] >= best).float().mean().item()


def _corrupt_fast(facts: torch.Tensor, n_entities: int, kb_mask: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Fresh negatives: head or tail of each fact replaced at random; those in the KB or reflexive dropped."""
    neg = facts.clone()
    side = 1 + torch.randint(2, (len(facts),), generator=g)  # 1: head, 2: tail
    neg[torch.arange(len(facts)), side] = torch.randint(n_entities, (len(facts),), generator=g)
    keep = (kb_mask[neg[:, 0], neg[:, 1], neg[:, 2]] == 0) & (neg[:, 1] != neg[:, 2])
    return neg[keep]


def _train_ltn(run, kb, cfg: KinshipConfig, known: set, with_rules: bool, queries: torch.Tensor,
               g: torch.Generator) -> torch.Tensor:
    """Train an LTN on the training KB (and the rules, if asked); its truth values of `queries` (Q, 3)."""
    E, R = len(kb.entities), len(kb.relations)
    ltn = RelationalLTN(E, R, cfg.dim, generator=g).to(run.device)
    opt = torch.optim.Adam(ltn.parameters(), lr=cfg.ltn_lr)
    rel = {r: i for i, r in enumerate(kb.relations)}
    axioms = [(rel[h], [(rel[r], a == "Y") for r, a, _ in body]) for h, bodies in RULES.items() for body in bodies]
    definitions = [(rel[h], [[(rel[r], a == "Y") for r, a, _ in body] for body in bodies]) for h, bodies in RULES.items()]
    base = torch.ones(R, dtype=torch.bool)
    base[[rel[r] for r in DERIVED]] = False
    kb_mask = torch.zeros(R, E, E)
    kb_mask[kb.train[:, 0], kb.train[:, 1], kb.train[:, 2]] = 1.0
    derived = kb.train[~base[kb.train[:, 0]]].repeat(cfg.negatives, 1)  # (N, 3)
    neg = _corrupt_fast(derived, E, kb_mask, g)  # fixed negatives

    def ground(ltn: RelationalLTN) -> torch.Tensor:
        # the base relations are observed completely, so they are grounded by the data (a fixed lookup,
        # as LTN allows for known predicates); the derived ones by their networks
        return torch.where(base[:, None, None], kb_mask, ltn.truth())
    name = "ltn_rules" if with_rules else "ltn_facts"
    for step in run.progress(range(cfg.ltn_steps), desc=name):
        T = ground(ltn)  # (R, E, E)
        truths = [
            SatAgg([T[kb.train[:, 0], kb.train[:, 1], kb.train[:, 2]]]),  # \forall known facts
            SatAgg([Not(T[neg[:, 0], neg[:, 1], neg[:, 2]])]),  # \forall corrupted derived facts: \lnot
        ]
        if with_rules:
            truths += [rule_truth(T, head, body) for head, body in axioms]
            truths += [definition_truth(T, head, bodies) for head, bodies in definitions]
        # \mathcal{L} = 1 - \mathrm{SatAgg}_{\varphi \in \mathcal{K}} \mathcal{G}(\varphi)
        loss = 1 - SatAgg(truths)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0:
            run.log(step, **{f"{name}_loss": loss})
    with torch.no_grad():
        T = ground(ltn)
        return T[queries[:, 0], queries[:, 1], queries[:, 2]]
