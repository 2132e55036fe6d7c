// One card: names, summary, paper, equations (KaTeX), lineage, claims with their verdicts and
// evidence, labs with goals and last results, and the implementation's source, highlighted.

import { getJSON, HttpError, live, send } from "./api.js";
import { fmtDate, fmtNum, fmtTime, h } from "./dom.js";
import { lang, name, t } from "./i18n.js";
import { loadKatex, prose, tex } from "./math.js";

const DOTS = 5;

export async function render(view, [id]) {
  if (!id) {
    location.hash = "#/graph";
    return null;
  }
  let card;
  try {
    [card] = await Promise.all([getJSON(`api/cards/${encodeURIComponent(id)}.json`), loadKatex()]);
  } catch (err) {
    if (err instanceof HttpError && err.status === 404) {
      view.replaceChildren(h("div", { class: "page narrow" }, h("div", { class: "notice error" }, err.message)));
      return null;
    }
    throw err;
  }
  const catalog = await getJSON("api/catalog.json");
  const family = catalog.families.find((f) => f.id === card.family.split(".")[0]);
  const stage = catalog.stages.find((s) => s.n === card.stage);
  const color = family ? family.color : "#888";

  const page = h("article", { class: "page card-page narrow", style: { "--fam": color }, dataset: { card: card.id } },
    header(card, family, stage),
    h("div", { class: "summary" }, (lang === "zh" ? card.summary_zh || card.summary_en : card.summary_en || card.summary_zh)
      .split(/\n\s*\n/).map((para) => h("p", {}, prose(para)))),
    paper(card),
    equations(card),
    lineage(card),
    claims(card),
    labs(card),
    source(card),
    resources(card));
  view.replaceChildren(page);
  window.scrollTo(0, 0);
  if (live()) for (const lab of card.labs || []) yourRuns(lab.id, page.querySelector(`[data-lab="${CSS.escape(lab.id)}"] .your-runs`));
  return null;
}

function subFamily(family, id) {
  const sub = family && (family.sub || []).find((f) => f.id === id);
  return sub ? name(sub) : id;
}

function header(card, family, stage) {
  const difficulty = h("span", { class: "dots", title: `${t("card.difficulty")} ${card.difficulty}/${DOTS}` },
    Array.from({ length: DOTS }, (_, i) => h("i", { class: i < card.difficulty ? "on" : "" })));
  return h("header", { class: "card-head" },
    h("h1", {}, h("span", { class: "title" }, name(card)), " ", h("span", { class: "alt" }, name(card, true))),
    h("div", { class: "meta" },
      h("span", { class: "chip family-chip" }, h("span", { class: "swatch" }), family ? name(family) : card.family),
      h("span", { class: "muted" }, subFamily(family, card.family)),
      h("span", {}, String(card.year)),
      h("span", {}, t(`kind.${card.kind}`)),
      stage ? h("a", { href: "#/roadmap" }, `${t("card.stage", { n: stage.n })} · ${name(stage)}`) : null,
      difficulty,
      h("a", { href: `#/graph/${encodeURIComponent(card.id)}` }, t("card.graph"))),
    card.aliases && card.aliases.length ? h("div", { class: "aliases muted small" }, card.aliases.join(" · ")) : null);
}

function section(key, ...body) {
  return h("section", { class: `card-section section-${key}` }, h("h2", {}, t(`card.${key}`)), ...body);
}

function paper(card) {
  const p = card.paper;
  if (!p) return null;
  const authors = (p.authors || []).slice(0, 6).join(", ") + ((p.authors || []).length > 6 ? " et al." : "");
  return section("paper", h("div", { class: "paper" },
    p.link ? h("a", { href: p.link, target: "_blank", rel: "noopener noreferrer", class: "paper-title" }, p.title)
      : h("span", { class: "paper-title" }, p.title),
    h("div", { class: "muted small" }, [authors, p.venue].filter(Boolean).join(" · "))));
}

function equations(card) {
  if (!card.equations || !card.equations.length) return null;
  return section("equations", card.equations.map((e) =>
    h("figure", { class: "equation" }, e.caption ? h("figcaption", {}, prose(e.caption)) : null, tex(e.tex, true))));
}

// A component_of edge points from the whole to its part; read as lineage, the part is what the
// whole was built from, so it moves up and the whole moves down.
function lineage(card) {
  const parents = card.parents || [], children = card.children || [];
  const up = merge([...parents.filter((r) => r.type !== "component_of"),
                    ...children.filter((r) => r.type === "component_of").map((r) => ({ ...r, type: "built_from" }))]);
  const down = merge([...children.filter((r) => r.type !== "component_of"),
                      ...parents.filter((r) => r.type === "component_of").map((r) => ({ ...r, type: "used_in" }))]);
  if (!up.length && !down.length) return null;
  const links = (items) => h("div", { class: "chips" }, items.map((r) =>
    h("a", { class: "chip", href: `#/card/${encodeURIComponent(r.id)}` }, name(r),
      h("span", { class: "rel muted" }, r.types.map((k) => t(`edge.${k}`)).join(", ")))));
  return section("lineage",
    up.length ? h("div", { class: "lineage-row" }, h("h3", {}, t("card.parents")), links(up)) : null,
    down.length ? h("div", { class: "lineage-row" }, h("h3", {}, t("card.children")), links(down)) : null);
}

function merge(items) {
  const byId = new Map();
  for (const r of items) {
    if (byId.has(r.id)) byId.get(r.id).types.push(r.type);
    else byId.set(r.id, { ...r, types: [r.type] });
  }
  return [...byId.values()];
}

export function verdictBadge(status) {
  const s = status || "pending";
  return h("span", { class: `verdict verdict-${s.replace("_", "-")}` }, t(`verdict.${s}`));
}

function claims(card) {
  const list = card.claims || [];
  if (!list.length) return section("claims", h("p", { class: "muted" }, t("card.noclaims")));
  const zh = lang === "zh";
  return section("claims", h("ul", { class: "claims" }, list.map((cl) => {
    const v = cl.verdict || { status: "pending" };
    const origin = v.origin === "run"
      ? [t("card.origin.run"), v.run, fmtDate(v.measured_at)]
      : v.origin === "snapshot" ? [t("card.origin.snapshot"), fmtDate(v.measured_at), v.machine, v.commit && String(v.commit).slice(0, 8)] : [];
    return h("li", { class: "claim", dataset: { claim: cl.id, verdict: v.status } },
      h("div", { class: "claim-head" }, verdictBadge(v.status), h("span", { class: "claim-text" }, prose(zh ? cl.zh || cl.en : cl.en || cl.zh))),
      v.evidence ? h("div", { class: "evidence" }, prose(v.evidence)) : null,
      h("div", { class: "claim-meta muted small" },
        [t("card.seed", { s: cl.source }), cl.lab ? t("card.lab", { l: cl.lab }) : null, ...origin].filter(Boolean).join(" · ")));
  })));
}

function labs(card) {
  const list = card.labs || [];
  if (!list.length) return null;
  return section("labs", list.map((lab) => {
    const last = lab.last;
    const measured = Object.fromEntries(((last && last.goals) || []).map((g) => [`${g.metric} ${g.op} ${g.target}`, g]));
    const goals = (lab.goals || []).map((g) => {
      const m = measured[`${g.metric} ${g.op} ${g.target}`];
      return h("li", { class: "goal" },
        h("code", {}, `${g.metric} ${g.op} ${fmtNum(g.target)}`),
        m ? h("span", {}, ` ${t("card.measured")} ${fmtNum(m.value)} `, passBadge(m.passed)) : null);
    });
    const buttons = live() ? h("div", { class: "run-buttons" },
      h("button", { type: "button", class: "btn run-button", dataset: { scale: "quick" }, onclick: (e) => runLab(e.target, lab.id, "quick") }, t("card.runQuick")),
      h("button", { type: "button", class: "btn run-button", dataset: { scale: "default" }, onclick: (e) => runLab(e.target, lab.id, "default") }, t("card.runDefault"))) : null;
    return h("div", { class: "lab-box", dataset: { lab: lab.id } },
      h("div", { class: "lab-head" }, h("code", { class: "lab-id" }, lab.id),
        h("span", { class: "muted small" }, t("card.budget", { s: fmtNum(lab.budget_s) })), buttons),
      lab.title ? h("p", { class: "lab-title small" }, lab.title) : null,
      goals.length ? h("ul", { class: "goals" }, goals) : h("p", { class: "muted small" }, t("card.claimsOnly")),
      h("div", { class: "last" }, h("strong", {}, t("card.last"), ": "),
        last ? h("span", { class: "small" },
          [last.status, fmtTime(last.seconds), last.origin ? t(`card.origin.${last.origin}`) : null, last.run, fmtDate(last.measured_at)].filter(Boolean).join(" · "))
          : h("span", { class: "muted small" }, t("card.nolast"))),
      last && last.figures && last.figures.length ? h("div", { class: "figures" },
        last.figures.map((src) => h("a", { href: src, target: "_blank" }, h("img", { src, alt: `${lab.id} figure`, loading: "lazy" })))) : null,
      live() ? h("div", { class: "your-runs" }) : null);
  }));
}

function passBadge(passed) {
  return h("span", { class: passed ? "pass" : "fail" }, passed ? `✓ ${t("pass")}` : `✗ ${t("fail")}`);
}

async function runLab(button, lab, scale) {
  button.disabled = true;
  try {
    const job = await send("POST", "api/jobs", { lab, scale, seed: 0 });
    location.hash = `#/labs/${encodeURIComponent(job.id)}`;
  } catch (err) {
    button.disabled = false;
    button.after(h("span", { class: "error small" }, ` ${err.message}`));
  }
}

async function yourRuns(lab, box) {
  if (!box) return;
  let runs;
  try {
    runs = await getJSON(`api/runs.json?lab=${encodeURIComponent(lab)}&limit=5`, { fresh: true });
  } catch {
    return;
  }
  if (!runs || !runs.length) return;
  box.replaceChildren(h("h3", {}, t("card.yourRuns")), h("ul", { class: "runs" }, runs.map((r) => {
    const goals = r.goals || [];
    return h("li", { class: "run", dataset: { run: r.id } },
      h("code", {}, r.id), " ",
      h("span", { class: `state state-${r.status}` }, r.status), " ",
      h("span", { class: "muted small" }, [r.scale, `seed ${r.seed}`, fmtTime(r.seconds), fmtDate(r.started),
        goals.length ? `${goals.filter((g) => g.passed).length}/${goals.length} ${t("labs.goals").toLowerCase()}` : null].filter(Boolean).join(" · ")));
  })));
}

function source(card) {
  const src = card.source;
  if (!src || !src.code) return null;
  const code = h("code", { class: "language-python" }, src.code);
  const details = h("details", { class: "source" },
    h("summary", {}, h("strong", {}, t("card.source")), " ", h("code", {}, src.path || src.module), " ",
      h("span", { class: "muted small" }, t("card.lines", { n: src.code.split("\n").length }))),
    h("pre", {}, code));
  details.addEventListener("toggle", async () => {
    if (!details.open || code.dataset.highlighted) return;
    const [{ default: hljs }, { default: python }] = await Promise.all([
      import("../vendor/highlight/es/core.min.js"), import("../vendor/highlight/es/languages/python.min.js")]);
    if (!hljs.getLanguage("python")) hljs.registerLanguage("python", python);
    hljs.highlightElement(code);
  });
  return h("section", { class: "card-section section-source" }, details);
}

function resources(card) {
  const list = (card.resources || []).filter((r) => r && r.url);
  if (!list.length) return null;
  return h("section", { class: "card-section section-resources" }, h("ul", { class: "resources small" },
    list.map((r) => h("li", {}, h("a", { href: r.url, target: "_blank", rel: "noopener noreferrer" }, r.title || r.url)))));
}
