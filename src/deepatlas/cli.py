"""`deepatlas`: read the map, follow the roadmap, run the labs, check the claims.

The catalogue commands (list, show, lineage, search, plan, mark, progress, data) never
import torch; only run, runs, verify, labs, models and tour do.
"""

from __future__ import annotations

import argparse
import json
import sys

from deepatlas import textui
from deepatlas.textui import badge, paint

EPILOG = """\
examples:
  deepatlas list --family vision --stage 1      cards of one family and stage
  deepatlas show resnet --lang zh               a card in Chinese, with its claims' verdicts
  deepatlas lineage transformer                 where an idea came from and what grew out of it
  deepatlas plan --to deepseek-v3 --weeks 12    the prerequisites of one target, in order
  deepatlas run perceptron/xor                  run a lab at its default scale
  deepatlas verify --stage 1                    run the stage-1 labs; goals and claim verdicts
  deepatlas serve                               the web atlas in your browser (genealogy, cards, roadmap, labs)

Runs, progress and caches live in $DEEPATLAS_HOME (default ~/.local/share/deepatlas).
"""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"deepatlas: {exc}", file=sys.stderr)
        return 2


class UserError(Exception):
    """A mistake in the command line: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deepatlas",
        description="An executable, bilingual atlas of deep learning: cards, labs and checked claims.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    def command(name, func, help):
        c = sub.add_parser(name, help=help, description=help)
        c.set_defaults(func=func)
        return c

    def fmt(c, choices=("table", "json")):
        c.add_argument("--format", choices=choices, default=choices[0], help="output format (default: %(default)s)")

    c = command("list", cmd_list, "list cards, filtered by family, stage or kind")
    c.add_argument("--family", help="family id or prefix, e.g. vision or vision.cnn")
    c.add_argument("--stage", type=int, help="roadmap stage number (see `deepatlas plan`)")
    c.add_argument("--kind", choices=("architecture", "technique", "concept", "system"))
    c.add_argument("--has-lab", action="store_true", help="only cards with a runnable lab")
    c.add_argument("--lang", choices=("en", "zh"), default="en", help="name language (default: en)")
    fmt(c)

    c = command("show", cmd_show, "show one card: summary, equations, lineage, claims and their verdicts")
    c.add_argument("id", help="card id, name, alias or Chinese name")
    c.add_argument("--lang", choices=("en", "zh"), default="en")
    fmt(c, ("text", "json"))

    c = command("lineage", cmd_lineage, "ancestors and descendants of a card as a tree")
    c.add_argument("id")
    c.add_argument("--depth", type=int, default=4, help="levels to show each way (default: %(default)s)")

    c = command("search", cmd_search, "search names, aliases, Chinese names and summaries")
    c.add_argument("text", nargs="+")
    fmt(c)

    c = command("plan", cmd_plan, "a prerequisite-first study plan by roadmap stage, with week estimates")
    c.add_argument("--to", metavar="ID", help="only what leads to this card, in order")
    c.add_argument("--weeks", type=float, help="fit the plan into this many weeks")
    c.add_argument("--lang", choices=("en", "zh"), default="en")
    fmt(c)

    c = command("mark", cmd_mark, "record your progress on a card")
    c.add_argument("id")
    c.add_argument("state", choices=("done", "learning", "skipped", "pending"))

    c = command("progress", cmd_progress, "your progress overall and per stage")
    fmt(c)

    c = command("data", cmd_data, "list the offline data sources with size, licence and origin")
    fmt(c)

    c = command("validate", cmd_validate, "validate every card; exit status 1 on errors")

    c = command("labs", cmd_labs, "list the registered labs with their goals and budgets")
    c.add_argument("pattern", nargs="?", default="*", help="wildcard over lab ids, e.g. 'resnet/*'")
    fmt(c)

    c = command("models", cmd_models, "list the registered models")
    c.add_argument("pattern", nargs="?", default="*")

    c = command("run", cmd_run, "run one lab: progress bar, metrics, goal verdicts, artifacts")
    c.add_argument("lab", help="lab id, e.g. perceptron/xor (see `deepatlas labs`)")
    add_run_options(c)
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable); a wrong key lists the allowed ones")
    c.add_argument("--events", action="store_true",
                   help="print JSON lines on stdout instead: start (run id, folder), each metrics row, end (summary)")
    fmt(c, ("text", "json"))

    c = command("runs", cmd_runs, "list past runs, newest first")
    c.add_argument("lab", nargs="?", help="only runs of this lab (or of labs under this card, e.g. resnet)")
    c.add_argument("--limit", type=int, default=20)
    fmt(c)

    c = command("verify", cmd_verify, "run many labs; print goals and claim verdicts")
    c.add_argument("--family", help="only labs whose card is in this family")
    c.add_argument("--stage", type=int, help="only labs whose card is in this roadmap stage")
    c.add_argument("--lab", action="append", help="only this lab (repeatable; wildcards allowed)")
    add_run_options(c)
    c.add_argument("--snapshot", action="store_true",
                   help="record the results in the verdict snapshot the cards show (default scale; "
                        "labs not selected keep their entry)")
    fmt(c)

    c = command("serve", cmd_serve, "open the web atlas: genealogy, mind map, cards, roadmap, live labs")
    c.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: %(default)s; anything but loopback exposes your runs and progress)")
    c.add_argument("--port", type=int, default=8765, help="(default: %(default)s)")
    c.add_argument("--allow-host", action="append", default=[], metavar="HOST:PORT",
                   help="also answer requests for this Host header (e.g. a name the machine is reached by)")
    c.add_argument("--no-open", action="store_true", help="do not open a browser")

    c = command("site", cmd_site, "write the web atlas as a static site (no live parts) to host anywhere")
    c.add_argument("action", choices=("build",))
    c.add_argument("dir", help="output folder (created; a previous build there is replaced)")

    c = command("tour", cmd_tour, "the main job: print the map, then verify the fundamentals labs of stage 1")
    c.add_argument("--scale", choices=("quick", "default", "full"), default="default")
    return p


def add_run_options(c) -> None:
    c.add_argument("--scale", choices=("quick", "default", "full"), default="default",
                   help="quick: seconds, proves the code path; default: reaches the goal; full: near paper scale")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    c.add_argument("--quiet", action="store_true", help="no progress bars")


# catalogue --------------------------------------------------------------------------

def catalog():
    from deepatlas.catalog import CatalogError, load_catalog

    try:
        return load_catalog()
    except CatalogError as exc:
        raise UserError(f"the catalogue is invalid ({exc}); run `deepatlas validate`") from None


def find(cat, name):
    from deepatlas.catalog import UnknownId

    try:
        return cat.get(name)
    except UnknownId as exc:
        raise UserError(str(exc)) from None


def card_row(c) -> dict:
    return {
        "id": c.id, "name": c.name, "name_zh": c.name_zh, "aliases": c.aliases, "family": c.family,
        "kind": c.kind, "year": c.year, "stage": c.stage, "difficulty": c.difficulty, "impl": c.impl,
        "labs": c.labs, "claims": len(c.claims),
    }


def cmd_list(args) -> None:
    cat = catalog()
    cards = [
        c for c in cat
        if (not args.family or c.family == args.family or c.family.startswith(args.family + "."))
        and (args.stage is None or c.stage == args.stage)
        and (not args.kind or c.kind == args.kind)
        and (not args.has_lab or c.labs)
    ]
    if args.format == "json":
        print(json.dumps([card_row(c) for c in cards], ensure_ascii=False, indent=1))
        return
    rows = [[c.id, c.display_name(args.lang), c.family, c.kind, c.year, c.stage, len(c.labs) or ""]
            for c in cards]
    print(textui.table(["id", "name", "family", "kind", "year", "stage", "labs"], rows, max_width=44))
    print(paint(f"\n{len(cards)} of {len(cat)} cards", "grey"))


def cmd_show(args) -> None:
    from deepatlas.catalog.graph import components
    from deepatlas.catalog.verdicts import verdicts

    cat = catalog()
    c = find(cat, args.id)
    judged = verdicts(cat, c.claims)
    if args.format == "json":
        row = card_row(c) | {
            "summary_en": c.summary_en, "summary_zh": c.summary_zh,
            "paper": c.paper.__dict__ if c.paper else None,
            "lineage": {r: getattr(c, r) for r in ("descends_from", "variant_of", "inspired_by", "component_of")},
            "equations": [e.__dict__ for e in c.equations],
            "claims": [cl.__dict__ | {"verdict": judged[cl.id].__dict__} for cl in c.claims],
        }
        print(json.dumps(row, ensure_ascii=False, indent=1))
        return
    zh = args.lang == "zh"
    title = f"{c.name_zh}  {c.name}" if zh else f"{c.name}  {c.name_zh}"
    print(paint(title, "bold"), paint(f"({c.year})", "grey"))
    stage = cat.stage(c.stage)
    print(f"{c.family} · {c.kind} · stage {c.stage} {stage.name_zh if zh else stage.name} · difficulty {c.difficulty}/5")
    if c.aliases:
        print(paint("aliases: " + ", ".join(c.aliases), "grey"))
    if c.paper:
        authors = ", ".join(c.paper.authors[:4]) + (" et al." if len(c.paper.authors) > 4 else "")
        print(f"\n{c.paper.title}\n  {authors}" + (f" · {c.paper.venue}" if c.paper.venue else "")
              + (f"\n  {c.paper.link}" if c.paper.link else ""))
    print("\n" + c.summary(args.lang))
    if c.equations:
        print(paint("\n公式" if zh else "\nEquations", "bold"))
        for e in c.equations:
            print(f"  {e.caption}: {e.tex}" if e.caption else f"  {e.tex}")
    rels = [(r, getattr(c, r)) for r in ("descends_from", "variant_of", "inspired_by", "component_of")]
    parts = components(cat, c.id)
    if any(ids for _, ids in rels) or parts:
        print(paint("\n谱系" if zh else "\nLineage", "bold"))
        for rel, ids in rels:
            if ids:
                print(f"  {rel.replace('_', ' ')}: " + ", ".join(cat.by_id[i].display_name(args.lang) for i in ids))
        if parts:
            print("  built from: " + ", ".join(p.display_name(args.lang) for p in parts))
    if c.claims:
        print(paint("\n论断" if zh else "\nClaims", "bold"))
        for cl in c.claims:
            v = judged[cl.id]
            print(f"  {badge(v.verdict)} {cl.zh if zh else cl.en}")
            detail = v.evidence + (f" ({v.origin})" if v.origin else "")
            print(paint(f"      {detail}  [seed {cl.source}]", "grey"))
    if c.labs:
        print(paint("\nLabs", "bold"))
        for lab in c.labs:
            print(f"  deepatlas run {lab}")


def cmd_lineage(args) -> None:
    from deepatlas.catalog.graph import ancestors_tree, components, descendants_tree

    cat = catalog()
    c = find(cat, args.id)
    print(paint(f"{c.name} ({c.year})", "bold"), paint(c.family, "grey"))

    up_words = {"descends_from": "parent", "variant_of": "original", "inspired_by": "inspiration"}
    down_words = {"descends_from": "child", "variant_of": "variant", "inspired_by": "inspired by it"}

    def show(nodes, words, prefix=""):
        for i, n in enumerate(nodes):
            last = i == len(nodes) - 1
            mark = ", shown above" if n.repeated else ""
            print(f"{prefix}{'└── ' if last else '├── '}{n.card.name} ({n.card.year}) "
                  + paint(f"· {words[n.relation]}{mark}", "grey"))
            show(n.children, words, prefix + ("    " if last else "│   "))

    up = ancestors_tree(cat, c.id, args.depth)
    down = descendants_tree(cat, c.id, args.depth)
    print(paint("\nancestors", "cyan"))
    show(up, up_words) if up else print("  (a root of the map)")
    print(paint("descendants", "cyan"))
    show(down, down_words) if down else print("  (none yet)")
    parts = components(cat, c.id)
    if parts or c.component_of:
        print(paint("parts", "cyan"))
        for p in parts:
            print(f"  built from {p.name} ({p.year})")
        for w in c.component_of:
            print(f"  part of {cat.by_id[w].name} ({cat.by_id[w].year})")


def cmd_search(args) -> None:
    cat = catalog()
    words = [w.lower() for w in args.text]
    hits = []
    for c in cat:
        names = " ".join([c.id, c.name, c.name_zh, *c.aliases]).lower()
        text = (c.summary_en + " " + c.summary_zh).lower()
        if all(w in names or w in text for w in words):
            score = sum(3 if w in names else 1 for w in words)
            hits.append((-score, c.stage, c.id, c))
    hits.sort(key=lambda h: h[:3])
    if args.format == "json":
        print(json.dumps([card_row(h[3]) for h in hits], ensure_ascii=False, indent=1))
        return
    if not hits:
        near = cat.suggest(" ".join(args.text))
        print("no card matches" + (f"; did you mean {', '.join(near)}?" if near else ""))
        return
    rows = [[c.id, c.name, c.name_zh, c.family, c.year] for *_, c in hits]
    print(textui.table(["id", "name", "中文", "family", "year"], rows, max_width=40))


def cmd_plan(args) -> None:
    from deepatlas.catalog.graph import study_plan
    from deepatlas.store import Store

    cat = catalog()
    target = find(cat, args.to).id if args.to else None
    if args.weeks is not None and args.weeks <= 0:
        raise UserError("--weeks must be a positive number of weeks")
    plan = study_plan(cat, target, args.weeks)
    done = Store().progress()
    if args.format == "json":
        print(json.dumps({
            "target": target, "total_weeks": round(plan.total_weeks, 2),
            "stages": [{"stage": n, "name": cat.stage(n).name, "name_zh": cat.stage(n).name_zh,
                        "weeks": round(sum(i.weeks for i in items), 2),
                        "items": [{"id": i.card.id, "name": i.card.name, "weeks": round(i.weeks, 2),
                                   "needs": i.needs, "state": done.get(i.card.id, "pending")} for i in items]}
                       for n, items in plan.stages],
        }, ensure_ascii=False, indent=1))
        return
    marks = {"done": paint("✓", "green"), "learning": paint("▶", "yellow"), "skipped": paint("–", "grey")}
    head = f"Study plan to {cat.by_id[target].name}" if target else "Study plan: the whole map"
    print(paint(f"{head} · about {plan.total_weeks:.1f} weeks", "bold"))
    for n, items in plan.stages:
        s = cat.stage(n)
        weeks = sum(i.weeks for i in items)
        print(paint(f"\nStage {n} · {s.name} · {s.name_zh} · {len(items)} cards · {_duration(weeks)}", "cyan"))
        for i in items:
            name = i.card.display_name(args.lang)
            moved = paint(f" (moved from stage {i.card.stage})", "grey") if i.card.stage != n else ""
            print(f"  {marks.get(done.get(i.card.id), ' ')} {textui.pad(i.card.id, 28)} {name}"
                  + paint(f"  {_duration(i.weeks)}", "grey") + moved)


def _duration(weeks: float) -> str:
    return f"{weeks:.1f} wk" if weeks >= 1 else f"{weeks * 7:.1f} d"


def cmd_mark(args) -> None:
    from deepatlas.store import Store

    c = find(catalog(), args.id)
    Store().mark(c.id, args.state)
    print(f"{c.id}: {args.state}")


def cmd_progress(args) -> None:
    from deepatlas.store import Store

    cat = catalog()
    states = Store().progress()
    rows, total_done = [], 0
    for s in cat.stages:
        ids = [c.id for c in cat if c.stage == s.n]
        counts = {k: sum(states.get(i) == k for i in ids) for k in ("done", "learning", "skipped")}
        finished = counts["done"] + counts["skipped"]
        total_done += finished
        pct = 100 * finished / len(ids) if ids else 0.0
        rows.append({"stage": s.n, "name": s.name, "cards": len(ids), **counts, "percent": round(pct, 1)})
    overall = round(100 * total_done / len(cat), 1) if len(cat) else 0.0
    if args.format == "json":
        print(json.dumps({"overall_percent": overall, "stages": rows, "cards": states}, indent=1))
        return
    table_rows = [[r["stage"], r["name"], r["cards"], r["done"], r["learning"], r["skipped"],
                   _bar(r["percent"]) + f" {r['percent']:.0f}%"] for r in rows]
    print(textui.table(["stage", "name", "cards", "done", "learning", "skipped", "progress"], table_rows))
    print(f"\noverall {_bar(overall)} {overall:.1f}%")


def _bar(pct: float, n: int = 20) -> str:
    full = round(pct / 100 * n)
    return "█" * full + "·" * (n - full)


def cmd_data(args) -> None:
    from deepatlas.data import describe

    rows = describe()
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    print(textui.table(["name", "kind", "size", "licence", "origin"],
                       [[r["name"], r["kind"], r["size"], r["licence"], r["origin"]] for r in rows]))


def cmd_validate(args) -> int:
    from deepatlas.catalog import check_catalog

    cat, errors = check_catalog()
    for e in errors:
        print(e)
    claims = list(cat.claims.values())
    checkable = sum(cl.checkable for cl in claims)
    print(f"{len(cat)} cards, {len(claims)} claims ({checkable} checkable), {len(errors)} error(s)")
    return 1 if errors else 0


# labs ---------------------------------------------------------------------------------

def lab_or_error(lab_id):
    from deepatlas.labs import UnknownLab, get_lab

    try:
        return get_lab(lab_id)
    except UnknownLab as exc:
        raise UserError(str(exc)) from None


def cmd_labs(args) -> None:
    from deepatlas.labs import list_labs

    labs = list_labs(args.pattern)
    if args.format == "json":
        print(json.dumps([{"lab": lb.id, "card": lb.card, "title": lb.title, "budget_s": lb.budget_s,
                           "goals": [g.__dict__ | {"scales": list(g.scales)} for g in lb.goals],
                           "claims": [c.claim for c in lb.claims]} for lb in labs], indent=1))
        return
    rows = [[lb.id, lb.title, "; ".join(f"{g.metric} {g.op} {g.target:g}" for g in lb.goals), f"{lb.budget_s:g}s"]
            for lb in labs]
    print(textui.table(["lab", "title", "goals", "budget"], rows, max_width=70))


def cmd_models(args) -> None:
    from deepatlas.registry import model_entries

    print(textui.table(["model", "card", "module"], [[m.name, m.card, m.module] for m in model_entries(args.pattern)]))


def parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UserError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def cmd_run(args) -> int:
    from deepatlas.labs import BadOverride
    from deepatlas.labs.runner import run_lab

    lab = lab_or_error(args.lab)
    quiet = args.quiet or args.format == "json" or args.events
    hooks = {}
    if args.events:  # the web atlas' lab queue reads these
        def emit(**event):
            print(json.dumps(event, ensure_ascii=False), flush=True)

        hooks = {"on_start": lambda run_id, run_dir: emit(event="start", run=run_id, dir=str(run_dir)),
                 "on_log": lambda row: emit(event="log", row=row)}
    try:
        result = run_lab(lab, scale=args.scale, seed=args.seed, device=args.device,
                         overrides=parse_sets(args.set), quiet=quiet, **hooks)
    except (BadOverride, RuntimeError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if args.events:
        emit(event="end", summary=result.summary())
    elif args.format == "json":
        print(json.dumps(result.summary(), indent=1, ensure_ascii=False))
    else:
        print_result(result)
    return 0 if result.passed else 1


def print_result(r) -> None:
    status = {"ok": paint("ok", "green")}.get(r.status, paint(r.status, "red"))
    budget = paint(f" (over the {r.budget_s:g}s budget)", "red") if r.scale == "default" and r.seconds > r.budget_s else ""
    print(paint(f"{r.lab}", "bold") + f" · {r.scale} · seed {r.seed} · {r.device} · {status} · {r.seconds:.1f}s{budget}")
    if r.message:
        print(paint(f"  {r.message}", "red"))
    if r.metrics:
        print(textui.table(["metric", "value"], [[k, _num(v)] for k, v in r.metrics.items()]))
    for g in r.goals:
        mark = paint("PASS", "green") if g["passed"] else paint("FAIL", "red")
        print(f"  {mark} {g['metric']} {g['op']} {g['target']:g}  (measured {_num(g['value'])})")
    for c in r.claims:
        print(f"  {badge(c['verdict'])} {c['id']}: {c['evidence']}")
    for fig in r.figures:
        print(f"  plot: {fig}")
    print(paint(f"  run {r.run_id} · {r.dir}", "grey"))


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def cmd_runs(args) -> None:
    from deepatlas.store import Store

    runs = Store().runs(args.lab, args.limit)
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in runs], indent=1, ensure_ascii=False))
        return
    import time as _time

    rows = []
    for r in runs:
        goals = r.goals or []
        passed = f"{sum(g['passed'] for g in goals)}/{len(goals)}" if goals else ""
        rows.append([r.id, r.lab, r.scale, r.seed, r.status, f"{r.seconds or 0:.1f}s", passed,
                     _time.strftime("%Y-%m-%d %H:%M", _time.localtime(r.started))])
    print(textui.table(["run", "lab", "scale", "seed", "status", "time", "goals", "started"], rows))


def select_labs(args, cat):
    from deepatlas.labs import list_labs

    labs = list_labs()
    if args.lab:
        import fnmatch

        labs = [lb for lb in labs if any(fnmatch.fnmatch(lb.id, p) for p in args.lab)]
        if not labs:
            raise UserError(f"no lab matches {', '.join(args.lab)}; `deepatlas labs` lists them")
    if args.family:
        labs = [lb for lb in labs if cat.by_id[lb.card].family.split(".")[0] == args.family
                or cat.by_id[lb.card].family.startswith(args.family)]
    if args.stage is not None:
        labs = [lb for lb in labs if cat.by_id[lb.card].stage == args.stage]
    return labs


def cmd_verify(args) -> int:
    from deepatlas.labs.runner import run_lab
    from deepatlas.labs.snapshot import write_snapshot

    cat = catalog()
    if args.snapshot and args.scale != "default":
        raise UserError("--snapshot records default-scale runs; drop --scale")
    labs = select_labs(args, cat)
    quiet = args.quiet or args.format == "json"
    results = []
    from tqdm.auto import tqdm

    for lab in tqdm(labs, desc="verify", disable=quiet, file=sys.stderr, leave=False):
        results.append(run_lab(lab, scale=args.scale, seed=args.seed, device=args.device, quiet=quiet))
    if args.format == "json":
        print(json.dumps([verify_row(r) for r in results], indent=1, ensure_ascii=False))
    else:
        print_verify(results, cat)
    if args.snapshot:
        path = write_snapshot(results)
        print(f"snapshot written to {path}", file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1


def verify_row(r) -> dict:
    return {"lab": r.lab, "card": r.card, "scale": r.scale, "seconds": round(r.seconds, 2),
            "status": r.status, "budget_s": r.budget_s, "goals": r.goals,
            "claims": [{"id": c["id"], "verdict": c["verdict"], "evidence": c["evidence"]} for c in r.claims]}


def print_verify(results, cat) -> None:
    rows = []
    for r in results:
        timing = f"{r.seconds:.1f}s/{r.budget_s:g}s"
        if r.status != "ok" or not r.goals:  # a failed run, or a lab that only judges claims
            mark = paint("ran", "green") if r.status == "ok" else paint(r.status.upper(), "red")
            rows.append([r.lab, "(claims only)" if r.status == "ok" else r.message or "", "", mark, timing])
        for g in r.goals if r.status == "ok" else []:
            mark = paint("PASS", "green") if g["passed"] else paint("FAIL", "red")
            rows.append([r.lab, f"{g['metric']} {g['op']} {g['target']:g}", _num(g["value"]), mark, timing])
    print(textui.table(["lab", "goal", "measured", "", "time/budget"], rows))
    claims = [(r, c) for r in results for c in r.claims]
    if claims:
        print(paint("\nClaims", "bold"))
        for r, c in claims:
            claim = cat.claims.get(c["id"])
            print(f"  {badge(c['verdict'])} {claim.en if claim else c['id']}")
            print(paint(f"      {c['evidence']}", "grey"))
    n_goals = sum(len(r.goals) for r in results)
    n_pass = sum(g["passed"] for r in results for g in r.goals)
    print(f"\n{len(results)} labs, {n_pass}/{n_goals} goals met, "
          f"{sum(c['verdict'] == 'supported' for _, c in claims)} claims supported, "
          f"{sum(c['verdict'] == 'refuted' for _, c in claims)} refuted")


# web atlas ------------------------------------------------------------------------------

def cmd_serve(args) -> None:
    from deepatlas.web.assets import SETUP_HINT, missing_assets

    if missing := missing_assets():
        raise UserError(f"the atlas' front-end libraries are not installed ({', '.join(missing)}); {SETUP_HINT}")
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be from 1 to 65535, got {args.port}")
    import uvicorn

    from deepatlas.web.app import LOOPBACK, Settings, create_app

    settings = Settings(host=args.host, port=args.port)
    if args.allow_host:
        settings.allowed_hosts = [*settings.hosts(), *args.allow_host]
    if args.host not in LOOPBACK:
        print(paint(f"warning: binding {args.host} lets other machines read your runs and progress; "
                    "changes still need the session token", "yellow"), file=sys.stderr)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else shown}:{args.port}/"
    print(f"deepatlas web atlas at {url}  (Ctrl-C stops it)", flush=True)
    if not args.no_open:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")


def cmd_site(args) -> None:
    from pathlib import Path

    from deepatlas.web.site import SiteError, build_site

    try:
        written = build_site(Path(args.dir))
    except SiteError as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {written['files']} files ({written['bytes'] / 1e6:.1f} MB) to {args.dir}: the page, "
          f"{written['cards']} cards, graph, mind map, roadmap and {written['labs']} labs with the snapshot's results")
    print(f"serve it with any static web server, e.g. `python -m http.server -d {args.dir}`")


def cmd_tour(args) -> int:
    cat = catalog()
    from collections import Counter

    print(paint(f"deepatlas · {len(cat)} cards · {len(cat.claims)} claims", "bold"))
    fams = Counter(c.top_family for c in cat)
    print(textui.table(["family", "cards"], [[f, n] for f, n in fams.most_common()]))
    print()
    stages = Counter(c.stage for c in cat)
    print(textui.table(["stage", "name", "名称", "cards", "weeks"],
                       [[s.n, s.name, s.name_zh, stages[s.n], f"{s.weeks[0]}-{s.weeks[1]}"] for s in cat.stages]))
    print(paint("\nRunning the fundamentals labs of stage 1 at the " + args.scale + " scale\n", "bold"))
    ns = argparse.Namespace(lab=None, family="fundamentals", stage=1, scale=args.scale, seed=0, device="cpu",
                            quiet=False, snapshot=False, format="table")
    code = cmd_verify(ns)
    from deepatlas.labs import list_labs

    rest = [lb for lb in list_labs() if cat.by_id[lb.card].stage == 1 and cat.by_id[lb.card].top_family != "fundamentals"]
    minutes = sum(lb.budget_s for lb in rest) / 60
    print(f"\nThe rest of stage 1 (CNNs, RNNs, attention: {len(rest)} labs, up to {minutes:.0f} minutes): "
          "`deepatlas verify --stage 1`.")
    print("Next: `deepatlas show <id>`, `deepatlas plan`, `deepatlas run <lab>`, `deepatlas --help`.")
    print(paint("\nOpen the web atlas (genealogy, mind map, cards, roadmap, live labs):", "bold"))
    print("  .venv/bin/deepatlas serve        (or `deepatlas serve` with the virtual environment active)")
    return code


if __name__ == "__main__":
    sys.exit(main())
