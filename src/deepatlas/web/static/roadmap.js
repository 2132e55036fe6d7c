// The roadmap: the study plan by stage, each card's state set with one click (the same store that
// `deepatlas mark` writes), per-stage and overall percentages, export as Markdown and JSON.

import { getJSON, live, send } from "./api.js";
import { h } from "./dom.js";
import { name, t } from "./i18n.js";

const STATES = ["done", "learning", "skipped", "pending"];

export async function render(view) {
  const road = await getJSON("api/roadmap.json", { fresh: true });
  const overall = h("div", { class: "overall" });
  const stages = road.stages.map((s) => stageBlock(s));
  const page = h("section", { class: "page roadmap-page narrow" },
    h("div", { class: "roadmap-head" },
      h("h1", {}, t("road.title")),
      h("div", { class: "exports" }, h("span", { class: "muted small" }, t("road.export")),
        h("a", { class: "btn small", href: "api/roadmap.md", download: "roadmap.md", id: "export-md" }, "Markdown"),
        h("a", { class: "btn small", href: "api/roadmap.json", download: "roadmap.json", id: "export-json" }, "JSON"))),
    overall,
    live() ? h("p", { class: "muted small" }, t("road.note"), " ", h("code", {}, "deepatlas mark"), ", ", h("code", {}, "deepatlas progress")) : null,
    stages.map((s) => s.el));
  view.replaceChildren(page);
  showTotals(road);

  function showTotals(r) {
    overall.replaceChildren(
      h("div", { class: "overall-line" }, h("strong", {}, t("road.overall")), bar(r.percent, "overall-bar"),
        h("span", { class: "pct", id: "overall-percent" }, `${fmtPct(r.percent)}%`)),
      h("div", { class: "counts" }, STATES.map((k) =>
        h("span", { class: `count-chip state-${k}` }, `${t(`state.${k}`)} ${r.counts ? r.counts[k] ?? 0 : 0}`))));
    for (const s of r.stages) {
      const block = stages.find((b) => b.n === s.n);
      if (block) block.setPercent(s.percent);
    }
  }

  function stageBlock(s) {
    const pct = h("span", { class: "pct" });
    const meter = h("span", { class: "bar-slot" });
    const setPercent = (p) => {
      meter.replaceChildren(bar(p));
      pct.textContent = `${fmtPct(p)}%`;
    };
    const el = h("details", { class: "stage", open: true, dataset: { stage: s.n } },
      h("summary", {},
        h("span", { class: "stage-title" }, h("strong", {}, t("card.stage", { n: s.n })), " · ", name(s)),
        h("span", { class: "muted small" }, t("road.weeks", { lo: s.weeks[0], hi: s.weeks[1] }), ` · ${s.cards.length}`),
        meter, pct),
      h("ol", { class: "stage-cards" }, s.cards.map((c) => cardRow(c))));
    setPercent(s.percent);
    return { n: s.n, el, setPercent };
  }

  function cardRow(c) {
    const row = h("li", { class: "road-card", dataset: { card: c.id, state: c.state } },
      h("a", { href: `#/card/${encodeURIComponent(c.id)}` }, name(c)), " ",
      h("span", { class: "muted small" }, name(c, true)));
    if (!live()) {
      row.append(h("span", { class: `state-label state-${c.state}` }, t(`state.${c.state}`)));
      return row;
    }
    const group = h("span", { class: "segmented", role: "group", "aria-label": name(c) },
      STATES.map((k) => h("button", { type: "button", class: `state-btn state-${k}`, dataset: { state: k },
                                       "aria-pressed": String(c.state === k), onclick: () => mark(row, c.id, k) },
        t(`state.${k}`))));
    row.append(group);
    return row;
  }

  async function mark(row, id, state) {
    const buttons = row.querySelectorAll(".state-btn");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await send("PUT", `api/progress/${encodeURIComponent(id)}`, { state });
      row.dataset.state = state;
      buttons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.state === state)));
      showTotals(await getJSON("api/roadmap.json", { fresh: true }));
    } catch (err) {
      row.append(h("span", { class: "error small" }, ` ${err.message}`));
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }
  return null;
}

function bar(percent, cls = "") {
  return h("span", { class: `bar ${cls}`, role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
                     "aria-valuenow": String(fmtPct(percent)) },
    h("span", { class: "fill", style: { width: `${Math.max(0, Math.min(100, percent || 0))}%` } }));
}

function fmtPct(p) {
  return Math.round((p || 0) * 10) / 10;
}
