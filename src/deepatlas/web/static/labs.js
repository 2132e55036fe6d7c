// Labs: the registered labs, the run queue (one job runs at a time, each cancellable), and one job
// followed live: its metrics rows are polled every half second and drawn with uPlot; when it ends,
// its goals, claim verdicts and figures are shown, with a link to the card the run now appears on.

import { getJSON, live, send } from "./api.js";
import { fmtNum, fmtTime, h } from "./dom.js";
import { name, t } from "./i18n.js";
import { verdictBadge } from "./card.js";

const POLL_JOB_MS = 500;
const POLL_QUEUE_MS = 1500;
const FINAL = new Set(["done", "failed", "cancelled"]);

export async function render(view, [jobId]) {
  const [labs, catalog] = await Promise.all([getJSON("api/labs.json"), getJSON("api/catalog.json")]);
  const cards = Object.fromEntries(catalog.cards.map((c) => [c.id, c]));
  const timers = new Set();
  let alive = true;
  const later = (fn, ms) => {
    const id = setTimeout(() => { timers.delete(id); if (alive) fn(); }, ms);
    timers.add(id);
  };

  const seed = h("input", { type: "number", id: "seed", min: "0", max: "1000000", value: "0", class: "seed-input" });
  const filter = h("input", { type: "search", class: "search", placeholder: t("labs.filter"), autocomplete: "off" });
  const rows = labs.map((lab) => labRow(lab));
  const list = h("table", { class: "labs-table" }, h("tbody", {}, rows));
  const queue = h("section", { class: "queue" });
  const jobBox = h("section", { class: "job", hidden: !jobId });

  const page = h("section", { class: "page labs-page narrow wide" },
    h("h1", {}, t("labs.title")),
    live() ? null : h("p", { class: "notice" }, t("labs.static"), " ", h("code", {}, "deepatlas serve")),
    live() ? jobBox : null,
    live() ? queue : null,
    h("div", { class: "toolbar" }, filter,
      live() ? h("label", { class: "small" }, `${t("labs.seed")} `, seed) : null,
      h("span", { class: "muted small" }, t("labs.count", { n: labs.length }))),
    list);
  view.replaceChildren(page);
  if (jobId) window.scrollTo(0, 0);

  filter.addEventListener("input", () => {
    const q = filter.value.trim().toLowerCase();
    for (const row of rows) row.hidden = Boolean(q) && !row.dataset.search.includes(q);
  });

  function labRow(lab) {
    const card = cards[lab.card];
    const scales = (lab.scales || ["quick", "default"]).filter((s) => s === "quick" || s === "default");
    const search = [lab.id, lab.title, card && card.name, card && card.name_zh].filter(Boolean).join(" ").toLowerCase();
    return h("tr", { class: "lab-row", dataset: { lab: lab.id, search } },
      h("td", {}, h("code", {}, lab.id), " ", h("a", { class: "small", href: `#/card/${encodeURIComponent(lab.card)}` }, card ? name(card) : lab.card),
        lab.title ? h("div", { class: "small muted" }, lab.title) : null),
      h("td", { class: "small goals-cell" }, (lab.goals || []).map((g) => h("div", {}, h("code", {}, `${g.metric} ${g.op} ${fmtNum(g.target)}`)))),
      h("td", { class: "small muted nowrap" }, `${fmtNum(lab.budget_s)} s`),
      live() ? h("td", { class: "nowrap" }, scales.map((s) =>
        h("button", { type: "button", class: "btn small start", dataset: { scale: s }, onclick: (e) => start(e.target, lab.id, s) }, t(`labs.${s}`)))) : null);
  }

  async function start(button, lab, scale) {
    button.disabled = true;
    try {
      const job = await send("POST", "api/jobs", { lab, scale, seed: Number(seed.value) || 0 });
      location.hash = `#/labs/${encodeURIComponent(job.id)}`;
    } catch (err) {
      button.after(h("span", { class: "error small" }, ` ${err.message}`));
    } finally {
      button.disabled = false;
    }
  }

  // The queue -------------------------------------------------------------------------------
  async function refreshQueue() {
    try {
      const { jobs } = await getJSON("api/jobs", { fresh: true });
      if (alive) showQueue(jobs);
    } catch (err) {
      queue.replaceChildren(h("p", { class: "error small" }, err.message));
    }
  }

  async function pollQueue() {
    await refreshQueue();
    later(pollQueue, POLL_QUEUE_MS);
  }

  function showQueue(jobs) {
    const body = jobs.length ? h("table", { class: "queue-table" }, h("tbody", {}, jobs.map((j) =>
      h("tr", { class: `job-row ${j.id === jobId ? "current" : ""}`, dataset: { job: j.id, state: j.state } },
        h("td", {}, h("code", {}, j.lab)),
        h("td", { class: "small" }, `${t(`labs.${j.scale}`)} · ${t("labs.seed")} ${j.seed}`),
        h("td", {}, stateBadge(j.state), j.position ? h("span", { class: "muted small" }, ` ${t("labs.position", { n: j.position })}`) : null),
        h("td", { class: "small muted" }, t("labs.rows", { n: j.n_rows ?? 0 })),
        h("td", { class: "nowrap" },
          j.id !== jobId ? h("a", { class: "btn small", href: `#/labs/${encodeURIComponent(j.id)}` }, t("labs.view")) : null,
          FINAL.has(j.state) ? null : h("button", { type: "button", class: "btn small danger cancel", onclick: () => cancel(j.id) }, t("labs.cancel")))))))
      : h("p", { class: "muted small" }, t("labs.empty"));
    queue.replaceChildren(h("h2", {}, t("labs.queue")), body);
  }

  async function cancel(id) {
    try {
      await send("DELETE", `api/jobs/${encodeURIComponent(id)}`);
      await refreshQueue();
    } catch (err) {
      queue.append(h("p", { class: "error small" }, err.message));
    }
  }

  // One job, live -------------------------------------------------------------------------------
  async function followJob(id) {
    const chartBox = h("div", { class: "chart", id: "job-chart", dataset: { points: "0" } });
    const head = h("div", { class: "job-head" });
    const result = h("div", { class: "job-result" });
    jobBox.replaceChildren(head, h("h3", {}, t("labs.curve")), chartBox, result);
    const chart = new LiveChart(chartBox);
    const started = Date.now();
    const all = [];
    let job;

    const tick = async () => {
      try {
        job = await getJSON(`api/jobs/${encodeURIComponent(id)}?since=${all.length}`, { fresh: true });
      } catch (err) {
        head.replaceChildren(h("p", { class: "error" }, err.status === 404 ? t("labs.unknownJob") : err.message));
        return;
      }
      all.push(...(job.rows || []));
      showHead(job);
      await chart.update(all);
      if (FINAL.has(job.state)) showResult(job);
      else later(tick, POLL_JOB_MS);
    };

    function showHead(j) {
      const info = labs.find((l) => l.id === j.lab);
      const card = info ? cards[info.card] : null;
      const elapsed = j.started ? ((j.finished || Date.now() / 1000) - j.started) : (Date.now() - started) / 1000;
      jobBox.dataset.state = j.state;
      head.replaceChildren(...[
        h("div", { class: "job-title" }, h("code", {}, j.lab), " ",
          h("span", { class: "muted small" }, `${t(`labs.${j.scale}`)} · ${t("labs.seed")} ${j.seed}`), " ", stateBadge(j.state)),
        h("div", { class: "muted small" }, [j.state === "queued" && j.position ? t("labs.position", { n: j.position }) : null,
          j.state !== "queued" ? fmtTime(Math.max(0, elapsed)) : null, t("labs.rows", { n: all.length }), j.run].filter(Boolean).join(" · ")),
        FINAL.has(j.state) ? null : h("button", { type: "button", class: "btn small danger cancel", onclick: () => cancel(j.id) }, t("labs.cancel")),
        card ? h("a", { class: "small", href: `#/card/${encodeURIComponent(card.id)}` }, name(card)) : null,
      ].filter(Boolean));
    }

    async function showResult(j) {
      const r = j.result || {};
      const labInfo = labs.find((l) => l.id === j.lab);
      const cardId = r.card || (labInfo && labInfo.card);
      const parts = [h("h3", {}, t("labs.result"))];
      if (j.message || r.message) parts.push(h("p", { class: "error" }, j.message || r.message));
      if (r.goals && r.goals.length) {
        parts.push(h("table", { class: "goals-table" }, h("tbody", {}, r.goals.map((g) =>
          h("tr", {}, h("td", {}, h("code", {}, `${g.metric} ${g.op} ${fmtNum(g.target)}`)),
            h("td", {}, fmtNum(g.value)), h("td", {}, h("span", { class: g.passed ? "pass" : "fail" }, g.passed ? `✓ ${t("pass")}` : `✗ ${t("fail")}`)))))));
      }
      if (r.claims && r.claims.length) {
        parts.push(h("ul", { class: "claims" }, r.claims.map((c) =>
          h("li", { class: "claim" }, h("div", { class: "claim-head" }, verdictBadge(c.verdict), h("code", {}, c.id)),
            h("div", { class: "evidence" }, c.evidence)))));
      }
      if (r.metrics) {
        parts.push(h("details", { class: "metrics" }, h("summary", { class: "small" }, "metrics"),
          h("table", { class: "metrics-table small" }, h("tbody", {}, Object.entries(r.metrics).map(([k, v]) =>
            h("tr", {}, h("td", {}, h("code", {}, k)), h("td", {}, fmtNum(v))))))));
      }
      const figures = h("div", { class: "figures" });
      parts.push(figures);
      if (cardId) parts.push(h("p", {}, h("a", { class: "btn primary", href: `#/card/${encodeURIComponent(cardId)}`, id: "job-card-link" }, `${t("labs.openCard")} →`)));
      result.replaceChildren(...parts);
      result.dataset.finished = "true";
      if (j.run) {
        try {
          const run = await getJSON(`api/runs/${encodeURIComponent(j.run)}.json`, { fresh: true });
          figures.replaceChildren(...(run.figures || []).map((src) => h("a", { href: src, target: "_blank" }, h("img", { src, alt: "figure", loading: "lazy" }))));
        } catch { /* the figures are a bonus */ }
      }
    }
    tick();
    return chart;
  }

  let chart = null;
  if (live()) {
    pollQueue();
    if (jobId) chart = await followJob(jobId);
  }
  return {
    destroy() {
      alive = false;
      for (const id of timers) clearTimeout(id);
      chart?.destroy();
    },
  };
}

function stateBadge(state) {
  return h("span", { class: `state state-${state}` }, t(`job.${state}`));
}

// Metrics rows {step, name: value, ...} -> one uPlot series per name; losses on the left axis,
// everything else (accuracies, norms) on the right, since their scales differ.
class LiveChart {
  constructor(box) {
    this.box = box;
    this.plot = null;
    this.keys = [];
    this.observer = new ResizeObserver(() => this.plot?.setSize(this.size()));
    this.observer.observe(box);
  }

  size() {
    const width = Math.max(240, this.box.clientWidth);
    return { width, height: Math.min(320, Math.max(200, Math.round(width * 0.45))) };
  }

  async update(rows) {
    if (!rows.length) return;
    const byStep = new Map();
    const keys = new Set();
    for (const row of rows) {
      const step = Number(row.step);
      if (!Number.isFinite(step)) continue;
      const merged = byStep.get(step) || {};
      for (const [k, v] of Object.entries(row)) {
        if (k === "step" || typeof v !== "number") continue;
        merged[k] = v;
        keys.add(k);
      }
      byStep.set(step, merged);
    }
    const steps = [...byStep.keys()].sort((a, b) => a - b);
    const names = [...keys].sort((a, b) => (isLoss(b) - isLoss(a)) || a.localeCompare(b));
    const data = [steps, ...names.map((k) => steps.map((s) => byStep.get(s)[k] ?? null))];
    if (!this.plot || names.join() !== this.keys.join()) {
      const uPlot = (await import("../vendor/uplot/uPlot.esm.js")).default;
      this.plot?.destroy();
      this.keys = names;
      this.plot = new uPlot(options(names, this.size()), data, this.box);
    } else {
      this.plot.setData(data);
    }
    this.box.dataset.points = String(steps.length);
  }

  destroy() {
    this.observer.disconnect();
    this.plot?.destroy();
  }
}

const isLoss = (k) => /loss|nll|mse|error|bpc|ppl/i.test(k);
const PALETTE = ["#3b6fb6", "#d0693b", "#3f9a6b", "#8f5bb5", "#c2a03a", "#5aa6b8", "#b5566f", "#6b7280"];

function options(names, size) {
  const right = names.some((k) => !isLoss(k));
  const left = names.some(isLoss);
  return {
    ...size,
    scales: { x: { time: false } },
    axes: [
      { label: "step", stroke: "#6b7280", grid: { stroke: "#eceae4" } },
      left ? { scale: "loss", stroke: "#6b7280", grid: { stroke: "#eceae4" }, size: 56 } : { scale: "other", stroke: "#6b7280", size: 56 },
      ...(left && right ? [{ scale: "other", side: 1, stroke: "#6b7280", grid: { show: false }, size: 56 }] : []),
    ],
    series: [
      { label: "step" },
      ...names.map((k, i) => ({
        label: k, scale: isLoss(k) ? "loss" : "other", stroke: PALETTE[i % PALETTE.length], width: 1.6,
        spanGaps: true, points: { show: false },
      })),
    ],
    legend: { live: true },
  };
}
