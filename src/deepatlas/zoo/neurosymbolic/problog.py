"""ProbLog: a logic program whose facts are true with given probabilities, queried exactly.

Each probabilistic fact `p::f.` is independently true with probability p (an annotated disjunction
`p1::a; p2::b.` picks at most one of its atoms); one choice for every fact is a possible world, an
ordinary Datalog program, and a query's probability is the total probability of the worlds whose
least model contains it. We ground the program by forward chaining, collect the query's proofs as
a DNF over the choices (its lineage), and compile that DNF by Shannon expansion with memoisation
into a decision diagram (an OBDD, or an MDD where choices have more than two values) on which
weighted model counting is one bottom-up pass: exact, and differentiable in the probabilities.

    P(L) = \\prod_{f_i \\in L} p_i \\prod_{f_i \\in F \\setminus L} (1 - p_i),   P(q) = \\sum_{L \\subseteq F:\\ L \\cup R \\models q} P(L)
    WMC(\\varphi) = \\sum_k w(v = k)\\ WMC(\\varphi|_{v = k})     (Shannon expansion on the choice v)

De Raedt, Kimmig & Toivonen, "ProbLog: A Probabilistic Prolog and Its Application in Link
Discovery", IJCAI 2007; Fierens et al., "Inference and learning in probabilistic logic programs
using weighted Boolean formulas", TPLP 2015 (grounding, then knowledge compilation, then WMC).

The language here: Datalog (constants, integers, variables; no function symbols), rules whose head
variables all occur in the body, the built-ins `X is A + B` (also - and *) and `X \\= Y`, no
negation. Programs are parsed from ProbLog's own syntax, so the tests run the same text through
the `problog` package.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from dataclasses import dataclass, field

import torch

from deepatlas.labs import Check, Goal, lab

Atom = tuple  # ("edge", "a", "b"): the predicate, then constants (str, int) or variables ("X")
Literal = tuple[int, int]  # (choice v, value k): choice v took its k-th outcome (k = n_v: none of them)
Proof = frozenset  # of Literals
ARITH = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def is_var(t) -> bool:
    return isinstance(t, str) and (t[0].isupper() or t[0] == "_")


def _split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses and brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [p.strip() for p in parts + [text[start:]]]


def _arg(token: str):
    token = token.strip()
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token):
        raise ValueError(f"cannot parse argument {token!r}: use a constant, an integer or a variable")
    return token


def parse_atom(text: str) -> Atom:
    """'edge(a, B)' -> ('edge', 'a', 'B'); 'alarm' -> ('alarm',)."""
    m = re.fullmatch(r"\s*([a-z][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*", text)
    if not m:
        raise ValueError(f"cannot parse atom {text!r}: expected name(arg, ...) with a lower-case name")
    args = () if m.group(2) is None else tuple(_arg(a) for a in _split_top(m.group(2), ","))
    return (m.group(1), *args)


def parse_literal(text: str) -> Atom:
    """A body literal: an atom, `X is A op B` as ('is', X, op, A, B), or `X \\= Y` as ('\\=', X, Y)."""
    m = re.fullmatch(r"\s*(\w+)\s+is\s+(\w+)\s*([-+*])\s*(\w+)\s*", text)
    if m:
        return ("is", _arg(m.group(1)), m.group(3), _arg(m.group(2)), _arg(m.group(4)))
    m = re.fullmatch(r"\s*(\w+)\s*\\=\s*(\w+)\s*", text)
    if m:
        return ("\\=", _arg(m.group(1)), _arg(m.group(2)))
    return parse_atom(text)


def format_atom(atom: Atom) -> str:
    return atom[0] if len(atom) == 1 else f"{atom[0]}({', '.join(map(str, atom[1:]))})"


@dataclass(frozen=True)
class Rule:
    head: Atom
    body: tuple[Atom, ...]


@dataclass
class Choice:
    """A probabilistic fact (one outcome) or an annotated disjunction: at most one outcome is true.
    `probs` None: the weights come from outside at evaluation time (a neural predicate)."""

    outcomes: tuple[Atom, ...]
    probs: tuple[float, ...] | None
    name: object = None

    def weights(self, dtype=torch.float64) -> torch.Tensor:
        """(n + 1,): the outcomes' probabilities, then that of none of them."""
        p = torch.tensor(self.probs, dtype=dtype)
        return torch.cat([p, 1 - p.sum(0, keepdim=True)])


# --- grounding: forward chaining to the least model ----------------------------------------------

def _unify(pattern: Atom, atom: Atom, subst: dict) -> dict | None:
    if len(pattern) != len(atom) or pattern[0] != atom[0]:
        return None
    out = dict(subst)
    for p, a in zip(pattern[1:], atom[1:]):
        p = out.get(p, p) if is_var(p) else p
        if is_var(p):
            out[p] = a
        elif p != a:
            return None
    return out


def _value(term, subst: dict, rule: Rule):
    v = subst.get(term, term) if is_var(term) else term
    if is_var(v):
        raise ValueError(f"variable {term} is unbound when a built-in of rule {format_atom(rule.head)} :- ... "
                         "is evaluated: put the atoms that bind it first")
    return v


def _matches(rule: Rule, body: tuple, index: dict, subst: dict):
    """Every substitution that makes the body true in the model `index` (pred, arity) -> atoms."""
    if not body:
        yield subst
        return
    lit, rest = body[0], body[1:]
    if lit[0] == "is":
        _, out, op, a, b = lit
        result = ARITH[op](_value(a, subst, rule), _value(b, subst, rule))
        bound = _unify(("is", out), ("is", result), subst)
        if bound is not None:
            yield from _matches(rule, rest, index, bound)
    elif lit[0] == "\\=":
        if _value(lit[1], subst, rule) != _value(lit[2], subst, rule):
            yield from _matches(rule, rest, index, subst)
    else:
        for atom in index.get((lit[0], len(lit)), ()):
            bound = _unify(lit, atom, subst)
            if bound is not None:
                yield from _matches(rule, rest, index, bound)


def ground(rules: list[Rule], base: set[Atom]) -> tuple[set[Atom], set[tuple[Atom, tuple[Atom, ...]]]]:
    """Naive forward chaining from the atoms `base`: the least model, and every ground rule instance
    (head, body atoms without built-ins) whose body is true in it."""
    model = set(base)
    ground_rules: set = set()
    while True:
        index: dict = {}
        for atom in model:
            index.setdefault((atom[0], len(atom)), []).append(atom)
        new = set()
        for rule in rules:
            for subst in _matches(rule, rule.body, index, {}):
                head = tuple([rule.head[0], *(_value(t, subst, rule) for t in rule.head[1:])])
                body = tuple(tuple([b[0], *(subst.get(t, t) for t in b[1:])]) for b in rule.body
                             if b[0] not in ("is", "\\="))
                new.add((head, body))
        if new <= ground_rules:
            return model, ground_rules
        ground_rules |= new
        model |= {head for head, _ in new}


# --- lineage: the query's proofs as a DNF over the choices ---------------------------------------

def _consistent(proof: Proof) -> bool:
    """A proof that needs two outcomes of one annotated disjunction is impossible."""
    return len({v for v, _ in proof}) == len(proof)


def _minimal(proofs: set[Proof]) -> frozenset:
    """Drop every proof that contains another: p \\lor (p \\land q) = p."""
    ordered = sorted(proofs, key=len)
    kept: list[Proof] = []
    for p in ordered:
        if not any(k <= p for k in kept):
            kept.append(p)
    return frozenset(kept)


def lineage(ground_rules, literals: dict[Atom, Literal], facts: set[Atom]) -> dict[Atom, frozenset]:
    """Minimal proofs of every derivable atom: a fixpoint over the ground rules (it terminates on cycles,
    since the proofs are sets over finitely many choices)."""
    proofs: dict[Atom, frozenset] = {a: frozenset([frozenset([lit])]) for a, lit in literals.items()}
    for a in facts:
        proofs[a] = frozenset([frozenset()])
    changed = True
    while changed:
        changed = False
        for head, body in ground_rules:
            # \mathrm{proofs}(h) \mathrel{\cup}= \{ \textstyle\bigcup_i \pi_i : \pi_i \in \mathrm{proofs}(b_i) \}
            combos = {frozenset().union(*ps) for ps in itertools.product(*(proofs.get(b, ()) for b in body))}
            combos = {p for p in combos if _consistent(p)}
            old = proofs.get(head, frozenset())
            new = _minimal(old | combos)
            if new != old:
                proofs[head] = new
                changed = True
    return proofs


# --- knowledge compilation: Shannon expansion into a decision diagram ----------------------------

@dataclass
class Circuit:
    """A reduced, ordered decision diagram: node i is ('true',), ('false',) or ('split', v, children),
    children[k] the diagram of the formula conditioned on choice v = k. The root is the last node."""

    nodes: list[tuple] = field(default_factory=list)
    arity: dict[int, int] = field(default_factory=dict)  # choice v -> number of values n_v + 1

    @property
    def size(self) -> int:
        return sum(node[0] == "split" for node in self.nodes)

    def evaluate(self, weights: dict[int, torch.Tensor]) -> torch.Tensor:
        """Weighted model count: weights[v] (..., n_v + 1) -> P (...), differentiable in the weights."""
        ref = next(iter(weights.values())) if weights else torch.ones(1)
        one, zero = ref.new_ones(ref.shape[:-1]), ref.new_zeros(ref.shape[:-1])
        values = []
        for node in self.nodes:
            if node[0] == "true":
                values.append(one)
            elif node[0] == "false":
                values.append(zero)
            else:
                _, v, children = node
                live = [k for k, c in enumerate(children) if self.nodes[c][0] != "false"]  # the rest add 0
                # WMC(\varphi) = \sum_k w(v = k)\, WMC(\varphi|_{v = k})
                child_values = torch.stack(torch.broadcast_tensors(*[values[children[k]] for k in live]), -1)
                values.append((weights[v][..., live] * child_values).sum(-1))
        return values[-1]


def compile_dnf(dnf: frozenset, arity: dict[int, int]) -> Circuit:
    """Shannon expansion on the choices in increasing order, memoised on the conditioned formula,
    with the OBDD reduction (a node whose children are all equal is that child)."""
    circuit = Circuit(arity=dict(arity))
    memo: dict[frozenset, int] = {}

    def add(node: tuple) -> int:
        circuit.nodes.append(node)
        return len(circuit.nodes) - 1

    def build(phi: frozenset) -> int:
        if phi in memo:
            return memo[phi]
        if frozenset() in phi:
            node = add(("true",))
        elif not phi:
            node = add(("false",))
        else:
            v = min(var for proof in phi for var, _ in proof)
            children = []
            for k in range(arity[v]):
                # \varphi|_{v=k}: proofs that need v = k' \neq k vanish; v = k is dropped from the rest
                cond = {proof - {(v, k)} for proof in phi if all(var != v or val == k for var, val in proof)}
                children.append(build(_minimal(cond)))
            node = children[0] if len(set(children)) == 1 else add(("split", v, tuple(children)))
        memo[phi] = node
        return node

    root = build(dnf)
    if root != len(circuit.nodes) - 1:  # make the root the last node
        circuit.nodes.append(circuit.nodes[root])
    return circuit


# --- the program ---------------------------------------------------------------------------------

class Program:
    """A ProbLog program: deterministic rules and facts, probabilistic choices, and queries."""

    def __init__(self):
        self.rules: list[Rule] = []
        self.facts: set[Atom] = set()
        self.choices: list[Choice] = []
        self.queries: list[Atom] = []

    @classmethod
    def parse(cls, text: str) -> Program:
        prog = cls()
        text = re.sub(r"%[^\n]*", "", text)
        for stmt in re.split(r"\.(?=\s|$)", text):
            stmt = stmt.strip()
            if not stmt:
                continue
            if stmt.startswith("query(") and stmt.endswith(")"):
                prog.queries.append(parse_atom(stmt[len("query("):-1]))
            elif ":-" in stmt:
                head, body = stmt.split(":-", 1)
                prog.add_rule(parse_atom(head), [parse_literal(b) for b in _split_top(body, ",")])
            elif "::" in stmt:
                pairs = [part.split("::", 1) for part in _split_top(stmt, ";")]
                if any(len(p) != 2 for p in pairs):
                    raise ValueError(f"every disjunct of {stmt!r} needs a probability: p::atom")
                prog.add_choice([parse_atom(a) for _, a in pairs], [float(p) for p, _ in pairs])
            else:
                prog.add_fact(parse_atom(stmt))
        return prog

    def add_rule(self, head: Atom, body: list[Atom]) -> None:
        bound = {t for b in body if b[0] not in ("is", "\\=") for t in b[1:] if is_var(t)}
        bound |= {b[1] for b in body if b[0] == "is" and is_var(b[1])}
        free = [t for t in head[1:] if is_var(t) and t not in bound]
        if free:
            raise ValueError(f"rule for {format_atom(head)}: head variables {free} do not occur in the body "
                             "(the grounding would be infinite)")
        self.rules.append(Rule(head, tuple(body)))

    def add_fact(self, atom: Atom) -> None:
        self._check_ground(atom)
        self.facts.add(atom)

    def add_choice(self, outcomes: list[Atom], probs: list[float] | None, name=None) -> int:
        """A probabilistic fact (one outcome) or an annotated disjunction; returns its index v."""
        for atom in outcomes:
            self._check_ground(atom)
        if probs is not None:
            if len(probs) != len(outcomes) or any(p < 0 for p in probs) or sum(probs) > 1 + 1e-9:
                raise ValueError(f"probabilities {probs} of {[format_atom(a) for a in outcomes]} must be >= 0 "
                                 "and sum to at most 1")
        self.choices.append(Choice(tuple(outcomes), None if probs is None else tuple(probs), name))
        return len(self.choices) - 1

    @staticmethod
    def _check_ground(atom: Atom) -> None:
        if any(is_var(t) for t in atom[1:]):
            raise ValueError(f"{format_atom(atom)} must be ground: facts take constants only")

    def _literals(self) -> dict[Atom, Literal]:
        out: dict[Atom, Literal] = {}
        for v, choice in enumerate(self.choices):
            for k, atom in enumerate(choice.outcomes):
                if atom in out:
                    raise ValueError(f"{format_atom(atom)} appears in two probabilistic facts; merge them")
                out[atom] = (v, k)
        return out

    def weights(self, dtype=torch.float64) -> dict[int, torch.Tensor]:
        return {v: c.weights(dtype) for v, c in enumerate(self.choices) if c.probs is not None}

    def arity(self) -> dict[int, int]:
        return {v: len(c.outcomes) + 1 for v, c in enumerate(self.choices)}

    def proofs(self, queries: list[Atom]) -> dict[Atom, frozenset]:
        """Ground the program (every choice atom possible) and return the minimal proofs of each query."""
        for q in queries:
            self._check_ground(q)
        literals = self._literals()
        _, ground_rules = ground(self.rules, self.facts | set(literals))
        proofs = lineage(ground_rules, literals, self.facts)
        return {q: proofs.get(q, frozenset()) for q in queries}

    def compile(self, query: Atom | str) -> Circuit:
        query = parse_atom(query) if isinstance(query, str) else query
        return compile_dnf(self.proofs([query])[query], self.arity())

    def probability(self, query: Atom | str, weights: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """P(query) by weighted model counting on the compiled circuit."""
        return self.compile(query).evaluate(self.weights() if weights is None else weights)


def brute_force_probability(prog: Program, query: Atom | str) -> float:
    """P(query) by the definition: enumerate every possible world, run the logic program in it and add
    up the probabilities of the worlds whose least model contains the query. Exponential; for tests."""
    query = parse_atom(query) if isinstance(query, str) else query
    w = prog.weights()
    total = 0.0
    for world in itertools.product(*(range(len(c.outcomes) + 1) for c in prog.choices)):
        # P(L) = \prod_v w(v = k_v)
        p = math.prod(w[v][k].item() for v, k in enumerate(world))
        if p == 0.0:
            continue
        true = {c.outcomes[k] for c, k in zip(prog.choices, world) if k < len(c.outcomes)}
        model, _ = ground(prog.rules, prog.facts | true)
        total += p * (query in model)
    return total


# --- problog/possible-worlds: WMC equals the sum over possible worlds -------------------------------

PATH_RULES = """
path(X, Y) :- edge(X, Y).
path(X, Y) :- edge(X, Z), path(Z, Y).
"""


def random_graph_program(n_nodes: int, n_edges: int, generator: torch.Generator) -> Program:
    """A directed graph (cycles allowed) whose edges are probabilistic facts, with the path rules."""
    pairs = [(a, b) for a in range(n_nodes) for b in range(n_nodes) if a != b]
    pick = torch.randperm(len(pairs), generator=generator)[:n_edges].tolist()
    probs = (0.1 + 0.8 * torch.rand(n_edges, generator=generator, dtype=torch.float64)).tolist()
    text = "".join(f"{p:.4f}::edge(n{pairs[i][0]}, n{pairs[i][1]}).\n" for i, p in zip(pick, probs))
    return Program.parse(text + PATH_RULES)


@dataclass
class WorldsConfig:
    n_nodes: int = 6
    edges: str = "6,8,10,12"  # numbers of probabilistic edges; 2^edges worlds to enumerate
    graphs: int = 3  # random graphs per size


@lab(
    "problog/possible-worlds",
    card="problog",
    config=WorldsConfig,
    scales={"quick": {"n_nodes": 5, "edges": "5,7", "graphs": 2}, "default": {},
            "full": {"n_nodes": 7, "edges": "6,8,10,12,14,16", "graphs": 5}},
    goals=[Goal("max_abs_err", "<=", 1e-12)],
    claims=[
        Check(
            "problog-logic-plus-probability",
            lambda m: m["max_abs_err"] <= 1e-12,
            "on {n_programs} random probabilistic graphs (reachability with cycles, up to {max_edges} uncertain "
            "edges, {max_worlds} worlds) the probability from weighted model counting on the compiled diagram "
            "equals the sum over enumerated possible worlds to {max_abs_err:.1e}; at the largest size the "
            "diagram has {largest_circuit} nodes and WMC took {wmc_ms_largest:.1f} ms against "
            "{enum_ms_largest:.0f} ms for enumeration",
        ),
    ],
    budget_s=60,
    threads=1,
)
def possible_worlds(run, cfg: WorldsConfig) -> dict:
    """A query's probability by WMC on its compiled lineage equals the sum over the possible worlds."""
    sizes = [int(s) for s in cfg.edges.split(",")]
    g = torch.Generator().manual_seed(run.seed)
    rows = []
    for m in run.progress(sizes, desc="graphs"):
        for _ in range(cfg.graphs):
            prog = random_graph_program(cfg.n_nodes, m, g)
            query = ("path", "n0", f"n{cfg.n_nodes - 1}")
            t0 = time.perf_counter()
            circuit = prog.compile(query)
            p_wmc = circuit.evaluate(prog.weights()).item()
            t1 = time.perf_counter()
            p_enum = brute_force_probability(prog, query)
            t2 = time.perf_counter()
            rows.append({"edges": m, "p": p_wmc, "p_enum": p_enum, "err": abs(p_wmc - p_enum), "size": circuit.size,
                         "wmc_ms": 1e3 * (t1 - t0), "enum_ms": 1e3 * (t2 - t1)})
            run.log(len(rows), abs_err=rows[-1]["err"], p=p_wmc)

    largest = [r for r in rows if r["edges"] == sizes[-1]]
    with run.figure("possible_worlds", ncols=2) as (fig, (ax_t, ax_p)):
        for key, label in (("wmc_ms", "compile + WMC"), ("enum_ms", "enumerate 2^m worlds")):
            ax_t.semilogy([r["edges"] for r in rows], [r[key] for r in rows], "o", label=label, alpha=0.7)
        ax_t.set(xlabel="uncertain edges m", ylabel="time (ms)", title="exact inference cost")
        ax_t.legend()
        ax_p.scatter([r["p"] for r in rows], [r["p_enum"] for r in rows], s=12)
        ax_p.plot([0, 1], [0, 1], "k--", lw=1)
        ax_p.set(xlabel="P(path) by WMC", ylabel="P(path) by enumeration", title="same probabilities")
    return {
        "max_abs_err": max(r["err"] for r in rows), "n_programs": len(rows), "max_edges": sizes[-1],
        "max_worlds": 2 ** sizes[-1], "largest_circuit": max(r["size"] for r in largest),
        "wmc_ms_largest": sum(r["wmc_ms"] for r in largest) / len(largest),
        "enum_ms_largest": sum(r["enum_ms"] for r in largest) / len(largest),
        "mean_p": sum(r["p"] for r in rows) / len(rows),
    }
