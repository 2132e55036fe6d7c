// The genealogy: every card at the position the server computed (x = year, one lane per family),
// typed lineage as edges, colour = family, shape = kind. Selecting a node lights up its ancestors
// and descendants; selecting it again opens its card.
//
// The page is built once and kept: coming back to it keeps the zoom, the filters and the selection.

import { getJSON } from "./api.js";
import { h, svg } from "./dom.js";
import { lang, name, t } from "./i18n.js";

const SHAPES = { architecture: "round-rectangle", technique: "rhomboid", concept: "ellipse", system: "hexagon" };
const LABEL_MAX = 36;  // Latin characters (a CJK one counts two); the full name is in the detail panel
const KINDS = Object.keys(SHAPES);
const EDGE_TYPES = ["descends_from", "variant_of", "inspired_by", "component_of"];

let state = null;   // {page, cy, ...} once built

// Started as soon as this module loads, in parallel with the rest of the start-up.
const library = import("../vendor/cytoscape/cytoscape.esm.min.mjs").then((m) => m.default);
const layout = getJSON("api/graph.json");
library.catch(() => {});
layout.catch(() => {});

// `#/graph/<id>` opens the genealogy with that card selected and centred.
export async function render(view, [focus]) {
  if (!state) {
    const [cytoscape, graph] = await Promise.all([library, layout]);
    state = build(cytoscape, graph, view);
  }
  view.replaceChildren(state.page);
  state.cy.resize();
  if (state.lang !== lang) relabel();
  state.drawLanes();
  const node = focus ? state.cy.getElementById(focus) : null;
  if (node && node.length) {
    if (node.hasClass("hidden")) resetFilters(state);
    select(state, focus);
    state.cy.animate({ center: { eles: node }, zoom: Math.max(state.cy.zoom(), 1.2) }, { duration: 300 });
  }
  return { relang: relabel, destroy() {} };
}

function build(cytoscape, graph, view) {
  const colors = Object.fromEntries(graph.lanes.map((l) => [l.family, l.color]));
  const filters = { families: new Set(graph.lanes.map((l) => l.family)), stage: "", kinds: new Set(KINDS), query: "" };
  const s = { graph, colors, filters, lang, selected: null };

  const container = h("div", { class: "cy", id: "cy", role: "img", "aria-label": "genealogy graph" });
  const lanes = svg("svg", { class: "lanes", "aria-hidden": "true" });
  const labels = svg("svg", { class: "lane-labels", "aria-hidden": "true" });
  const detail = h("div", { class: "detail-panel", hidden: true });
  const count = h("span", { class: "muted small" });
  const search = h("input", { type: "search", class: "search", id: "graph-search", autocomplete: "off",
                              placeholder: t("graph.search") });
  const aside = h("aside", { class: "filters", id: "filters" });
  const toggle = h("button", { type: "button", class: "btn small filters-toggle", "aria-controls": "filters",
                               "aria-expanded": "false" }, t("graph.filters"));
  const hint = h("p", { class: "hint small muted" }, t("graph.hint"));
  const fit = h("button", { type: "button", class: "btn small", onclick: () => fitVisible() }, t("graph.fit"));

  s.page = h("section", { class: "page graph-page" },
    h("div", { class: "graph-bar" }, toggle, search, count, fit),
    h("div", { class: "graph-body" }, aside,
      h("div", { class: "graph-wrap" }, lanes, container, labels, detail, hint)));
  toggle.addEventListener("click", () => {
    const open = s.page.classList.toggle("filters-open");
    toggle.setAttribute("aria-expanded", String(open));
  });

  view.replaceChildren(s.page);  // attached before drawing, so the graph knows its size

  const elements = [];
  for (const n of graph.nodes) {
    elements.push({
      group: "nodes",
      data: { id: n.id, label: short(name(n)), node: n, color: colors[n.top_family] || "#888",
              fill: tint(colors[n.top_family] || "#888", 0.22), shape: SHAPES[n.kind] || "ellipse" },
      position: { x: n.x, y: n.y },
      classes: lang === "zh" ? `${n.kind} zh` : n.kind,
    });
  }
  // component_of comes whole -> part; drawn part -> whole, so a card's ancestors include its building blocks.
  graph.edges.forEach((e, i) => {
    const [source, target] = e.type === "component_of" ? [e.target, e.source] : [e.source, e.target];
    elements.push({ group: "edges", data: { id: `e${i}`, source, target, type: e.type } });
  });

  const cy = cytoscape({
    container,
    elements,
    layout: { name: "preset", fit: false },
    ...overview(graph, container),  // from the layout's known size: measuring 324 labels to fit takes long
    style: STYLE,
    minZoom: 0.05,
    maxZoom: 4,
    autoungrabify: true,   // positions carry meaning (year, family), so nodes stay where they are
    boxSelectionEnabled: false,
    selectionType: "single",
    textureOnViewport: true,
  });
  s.cy = cy;
  window.atlas = { ...(window.atlas || {}), cy };

  // Lanes and year ticks live in an SVG under the canvas, redrawn in screen space on every pan/zoom.
  let pending = false;
  s.drawLanes = () => drawLanes(s, lanes, labels);
  cy.on("viewport resize", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; s.drawLanes(); });
  });

  cy.on("tap", "node", (evt) => {
    const node = evt.target;
    if (s.selected === node.id()) location.hash = `#/card/${encodeURIComponent(node.id())}`;
    else select(s, node.id());
  });
  cy.on("dbltap", "node", (evt) => { location.hash = `#/card/${encodeURIComponent(evt.target.id())}`; });
  cy.on("tap", (evt) => { if (evt.target === cy) select(s, null); });
  cy.on("mouseover", "node", () => { container.style.cursor = "pointer"; });
  cy.on("mouseout", "node", () => { container.style.cursor = ""; });

  search.addEventListener("input", () => { filters.query = search.value.trim().toLowerCase(); applySearch(s); });
  search.addEventListener("keydown", (evt) => {
    if (evt.key === "Enter") {
      const first = cy.nodes(".match").not(".hidden")[0];
      if (first) { select(s, first.id()); cy.animate({ center: { eles: first }, zoom: Math.max(cy.zoom(), 1.2) }, { duration: 250 }); }
    } else if (evt.key === "Escape") {
      search.value = ""; filters.query = ""; applySearch(s);
    }
  });

  s.aside = aside;
  s.count = count;
  s.detail = detail;
  s.search = search;
  s.hint = hint;
  s.toggle = toggle;
  s.fitButton = fit;
  buildFilters(s);
  updateCount(s);

  const fitVisible = () => {
    const eles = cy.nodes().not(".hidden");
    if (eles.length) cy.animate({ fit: { eles, padding: 24 } }, { duration: 250 });
  };
  s.fitVisible = fitVisible;

  // The node count is published once the first frame is drawn: tests and the render benchmark wait on it.
  requestAnimationFrame(() => {
    s.drawLanes();
    container.dataset.nodeCount = String(cy.nodes().length);
    container.dataset.edgeCount = String(cy.edges().length);
  });
  return s;
}

// The whole map at the top of the container; on a phone, all lanes at full height, read left to
// right by panning.
function overview(graph, container) {
  const W = container.clientWidth, H = container.clientHeight, pad = 16;
  const top = (graph.lanes.length ? graph.lanes[0].y0 : 0) - 24, height = graph.height - top;
  const fitAll = Math.min((W - 2 * pad) / graph.width, (H - 2 * pad) / height);
  const zoom = Math.max(0.05, W < 640 ? (H - 2 * pad) / height : fitAll);
  const x = W < 640 ? pad : (W - graph.width * zoom) / 2;
  return { zoom, pan: { x, y: pad - top * zoom } };
}

function buildFilters(s) {
  const { graph, filters, colors } = s;
  const byFamily = {};
  for (const n of graph.nodes) byFamily[n.top_family] = (byFamily[n.top_family] || 0) + 1;

  const famBoxes = graph.lanes.map((l) => {
    const box = h("input", { type: "checkbox", value: l.family, checked: filters.families.has(l.family) });
    box.addEventListener("change", () => {
      box.checked ? filters.families.add(l.family) : filters.families.delete(l.family);
      applyFilters(s);
    });
    return h("label", { class: "check" }, box,
      h("span", { class: "swatch", style: { background: colors[l.family] } }),
      h("span", { class: "lane-name", dataset: { family: l.family } }, name(l)),
      h("span", { class: "muted small" }, String(byFamily[l.family] || 0)));
  });
  const setAll = (on) => {
    for (const lbl of famBoxes) {
      const box = lbl.querySelector("input");
      box.checked = on;
      on ? filters.families.add(box.value) : filters.families.delete(box.value);
    }
    applyFilters(s);
  };

  const stages = [...new Set(graph.nodes.map((n) => n.stage))].sort((a, b) => a - b);
  const stageSel = h("select", { id: "stage-filter" },
    h("option", { value: "" }, t("graph.allStages")),
    stages.map((n) => h("option", { value: String(n), selected: filters.stage === String(n) }, t("card.stage", { n }))));
  stageSel.addEventListener("change", () => { filters.stage = stageSel.value; applyFilters(s); });

  const kindBoxes = KINDS.map((k) => {
    const box = h("input", { type: "checkbox", value: k, checked: filters.kinds.has(k) });
    box.addEventListener("change", () => {
      box.checked ? filters.kinds.add(k) : filters.kinds.delete(k);
      applyFilters(s);
    });
    return h("label", { class: "check" }, box, shapeIcon(k), h("span", {}, t(`kind.${k}`)));
  });

  const reset = h("button", { type: "button", class: "btn small", onclick: () => {
    resetFilters(s);
    select(s, null);
  } }, t("graph.reset"));

  s.aside.replaceChildren(
    h("div", { class: "filter-group" },
      h("div", { class: "filter-head" }, h("strong", {}, t("graph.families")),
        h("span", {}, h("button", { type: "button", class: "link", onclick: () => setAll(true) }, t("graph.all")), " · ",
          h("button", { type: "button", class: "link", onclick: () => setAll(false) }, t("graph.none")))),
      famBoxes),
    h("div", { class: "filter-group" }, h("label", { class: "filter-head", for: "stage-filter" }, h("strong", {}, t("graph.stage"))), stageSel),
    h("div", { class: "filter-group" }, h("div", { class: "filter-head" }, h("strong", {}, t("graph.kinds"))), kindBoxes),
    h("div", { class: "filter-group" }, h("div", { class: "filter-head" }, h("strong", {}, t("graph.edges"))),
      EDGE_TYPES.map((e) => h("div", { class: "edge-key" }, edgeIcon(e), h("span", {}, t(`edge.${e}`))))),
    reset);
}

function resetFilters(s) {
  s.filters.families = new Set(s.graph.lanes.map((l) => l.family));
  s.filters.kinds = new Set(KINDS);
  s.filters.stage = "";
  s.filters.query = "";
  s.search.value = "";
  buildFilters(s);
  applySearch(s);
  applyFilters(s);
}

function applyFilters(s) {
  const { cy, filters } = s;
  cy.batch(() => {
    cy.nodes().forEach((node) => {
      const n = node.data("node");
      const show = filters.families.has(n.top_family) && (!filters.stage || String(n.stage) === filters.stage)
        && filters.kinds.has(n.kind);
      node.toggleClass("hidden", !show);
    });
  });
  if (s.selected && cy.getElementById(s.selected).hasClass("hidden")) select(s, null);
  updateCount(s);
  s.fitVisible();
}

function applySearch(s) {
  const { cy, filters } = s;
  const q = filters.query;
  cy.batch(() => {
    cy.nodes().removeClass("match");
    if (!q) return;
    cy.nodes().filter((node) => {
      const n = node.data("node");
      return n.id.includes(q) || (n.label || "").toLowerCase().includes(q) || (n.label_zh || "").includes(q);
    }).addClass("match");
  });
  if (!s.selected) fade(s);
  updateCount(s);
}

// Fade what is neither the selection's lineage nor a search match.
function fade(s) {
  const { cy } = s;
  cy.batch(() => {
    cy.elements().removeClass("faded lit");
    if (s.selected) {
      const node = cy.getElementById(s.selected);
      const lineage = node.union(node.predecessors()).union(node.successors());
      cy.elements().not(lineage).addClass("faded");
      lineage.edges().addClass("lit");
    } else if (s.filters.query) {
      cy.nodes().not(".match").addClass("faded");
      cy.edges().addClass("faded");
    }
  });
}

function select(s, id) {
  const { cy } = s;
  s.selected = id;
  cy.nodes().unselect();
  if (id) cy.getElementById(id).select();
  fade(s);
  showDetail(s);
}

function showDetail(s) {
  const { cy, detail } = s;
  if (!s.selected) {
    detail.hidden = true;
    s.hint.hidden = false;
    return;
  }
  const node = cy.getElementById(s.selected);
  const n = node.data("node");
  const lane = s.graph.lanes.find((l) => l.family === n.top_family);
  detail.replaceChildren(
    h("div", { class: "detail-title" }, h("span", { class: "swatch", style: { background: s.colors[n.top_family] } }),
      h("strong", {}, name(n)), h("span", { class: "muted" }, ` ${name(n, true)}`)),
    h("div", { class: "muted small" }, `${n.year} · ${lane ? name(lane) : n.family} · ${t(`kind.${n.kind}`)} · ${t("card.stage", { n: n.stage })}`),
    h("div", { class: "small" }, t("graph.lineage", { a: node.predecessors("node").length, d: node.successors("node").length })),
    h("a", { class: "btn primary small", href: `#/card/${encodeURIComponent(n.id)}` }, t("graph.open")));
  detail.hidden = false;
  s.hint.hidden = true;
}

function updateCount(s) {
  const shown = s.cy.nodes().not(".hidden").length;
  const total = s.cy.nodes().length;
  const matches = s.filters.query ? s.cy.nodes(".match").not(".hidden").length : null;
  s.count.textContent = t("graph.shown", { n: shown, total }) + (matches === null ? "" : ` · ${t("graph.matches", { n: matches })}`);
  const container = s.cy.container();  // null once the page has moved on and the graph was torn down
  if (container) container.dataset.visibleCount = String(shown);
}

function relabel() {
  if (!state) return;
  const s = state;
  s.lang = lang;
  s.cy.batch(() => s.cy.nodes().forEach((node) => {
    node.data("label", short(name(node.data("node"))));
    node.toggleClass("zh", lang === "zh");
  }));
  s.search.placeholder = t("graph.search");
  s.hint.textContent = t("graph.hint");
  s.toggle.textContent = t("graph.filters");
  s.fitButton.textContent = t("graph.fit");
  buildFilters(s);
  updateCount(s);
  showDetail(s);
  s.drawLanes();
}

// Lane bands and year lines go under the canvas, their labels over it; all in screen space.
function drawLanes(s, back, front) {
  const { cy, graph } = s;
  const zoom = cy.zoom(), pan = cy.pan();
  const W = cy.width(), H = cy.height();
  for (const layer of [back, front]) {
    layer.setAttribute("viewBox", `0 0 ${W} ${H}`);
    layer.setAttribute("width", W);
    layer.setAttribute("height", H);
  }
  const sx = (x) => x * zoom + pan.x, sy = (y) => y * zoom + pan.y;
  const under = [], over = [];
  const left = sx(-40), right = sx(graph.width + 40);
  graph.lanes.forEach((l, i) => {
    const y0 = sy(l.y0), y1 = sy(l.y1);
    if (y1 < 0 || y0 > H) return;
    under.push(svg("rect", { x: left, y: y0, width: right - left, height: Math.max(0, y1 - y0),
                             fill: l.color, "fill-opacity": i % 2 ? 0.06 : 0.11 }));
    if (y1 - y0 > 12) {
      const label = svg("text", { x: Math.max(left + 6, 6), y: Math.max(y0, 0) + 11, fill: l.color, class: "lane-label" });
      label.textContent = name(l);
      over.push(label);
    }
  });
  const top = graph.lanes.length ? sy(graph.lanes[0].y0) : sy(0);
  const bottom = graph.lanes.length ? sy(graph.lanes[graph.lanes.length - 1].y1) : sy(graph.height);
  let lastX = -Infinity;
  for (const tick of graph.ticks) {
    const x = sx(tick.x);
    if (x < -20 || x > W + 20) continue;
    under.push(svg("line", { x1: x, x2: x, y1: Math.max(top, 0), y2: Math.min(bottom, H), class: "tick" }));
    if (x - lastX >= 40) {
      const label = svg("text", { x: x, y: Math.min(Math.max(top - 6, 12), H - 6), class: "tick-label", "text-anchor": "middle" });
      label.textContent = String(tick.year);
      over.push(label);
      lastX = x;
    }
  }
  back.replaceChildren(...under);
  front.replaceChildren(...over);
}

// A long name loses its parenthesis first, then its tail. A CJK character is as wide as two Latin ones.
function short(label) {
  if (textWidth(label) <= LABEL_MAX) return label;
  const bare = label.replace(/\s*[（(].*?[)）]/g, "");
  if (textWidth(bare) <= LABEL_MAX) return bare;
  let out = "";
  for (const ch of bare) {
    if (textWidth(out + ch) > LABEL_MAX - 1) break;
    out += ch;
  }
  return `${out}…`;
}

function textWidth(text) {
  let n = 0;
  for (const ch of text) n += ch.codePointAt(0) >= 0x2e80 ? 2 : 1;
  return n;
}

// The family colour mixed with white: a light fill that dark text stays readable on.
function tint(hex, amount) {
  const n = parseInt(hex.slice(1), 16);
  const mix = (c) => Math.round(255 - (255 - c) * amount);
  return `rgb(${mix(n >> 16)}, ${mix((n >> 8) & 255)}, ${mix(n & 255)})`;
}

function shapeIcon(kind) {
  const icon = svg("svg", { width: 14, height: 14, viewBox: "0 0 14 14", class: "shape-icon" });
  const attrs = { fill: "#8a8f98" };
  const shape = {
    architecture: () => svg("rect", { x: 0.5, y: 3, width: 13, height: 8, rx: 2.5, ...attrs }),
    technique: () => svg("polygon", { points: "3,3 13.5,3 11,11 0.5,11", ...attrs }),
    concept: () => svg("ellipse", { cx: 7, cy: 7, rx: 6.5, ry: 4, ...attrs }),
    system: () => svg("polygon", { points: "3,3 11,3 13.5,7 11,11 3,11 0.5,7", ...attrs }),
  }[kind]();
  icon.append(shape);
  return icon;
}

function edgeIcon(type) {
  const icon = svg("svg", { width: 30, height: 10, viewBox: "0 0 30 10", class: "edge-icon" });
  const dash = { descends_from: "", variant_of: "5 3", inspired_by: "1.5 2.5", component_of: "8 2 2 2" }[type];
  icon.append(svg("line", { x1: 1, y1: 5, x2: 24, y2: 5, stroke: EDGE_COLORS[type], "stroke-width": 1.6, "stroke-dasharray": dash }));
  icon.append(svg("polygon", { points: "23,1.5 29,5 23,8.5", fill: EDGE_COLORS[type] }));
  return icon;
}

const EDGE_COLORS = { descends_from: "#7d8593", variant_of: "#7d8593", inspired_by: "#a3a9b4", component_of: "#b48a5a" };

const STYLE = [
  { selector: "node", style: {
    shape: "data(shape)", width: 100, height: 24, "background-color": "data(fill)",
    "border-width": 1.5, "border-color": "data(color)",
    label: "data(label)", "font-size": 9, color: "#1f2430", "text-valign": "center", "text-halign": "center",
    "text-wrap": "wrap", "text-max-width": 90, "line-height": 1.1, "min-zoomed-font-size": 6,
    "font-family": "system-ui, sans-serif",
  } },
  { selector: "node.zh", style: { "text-overflow-wrap": "anywhere" } },  // Chinese has no spaces to wrap at
  { selector: "node.technique", style: { "text-max-width": 78 } },
  { selector: "node.system", style: { "text-max-width": 84 } },
  { selector: "node:selected", style: { "border-width": 3, "border-color": "#1d2330", "font-weight": "bold", "z-index": 10 } },
  { selector: "node.match", style: { "border-width": 3, "border-color": "#1d2330", "font-weight": "bold", "z-index": 9 } },
  { selector: "edge", style: {
    width: 1, "line-color": "#9aa1ad", "target-arrow-color": "#9aa1ad", "target-arrow-shape": "triangle",
    "arrow-scale": 0.6, "curve-style": "straight", opacity: 0.45,
  } },
  { selector: "edge[type = 'variant_of']", style: { "line-style": "dashed", "line-dash-pattern": [5, 3] } },
  { selector: "edge[type = 'inspired_by']", style: { "line-style": "dotted", "line-color": "#b1b6bf", "target-arrow-color": "#b1b6bf" } },
  { selector: "edge[type = 'component_of']", style: { "line-style": "dashed", "line-dash-pattern": [8, 2, 2, 2], "line-color": "#c9a57c", "target-arrow-color": "#c9a57c" } },
  { selector: "edge.lit", style: { width: 2, opacity: 1, "line-color": "#3a4150", "target-arrow-color": "#3a4150", "z-index": 8 } },
  { selector: ".faded", style: { opacity: 0.13 } },
  { selector: "edge.faded", style: { opacity: 0.04 } },
  { selector: ".hidden", style: { display: "none" } },
];
