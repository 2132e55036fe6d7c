// The mind map: the taxonomy as a collapsible outline (root -> families -> sub-families -> cards),
// every leaf a link to its card. Built on <details>, so it works with the keyboard as it is.

import { getJSON } from "./api.js";
import { h } from "./dom.js";
import { name, t } from "./i18n.js";

export async function render(view) {
  const [tree, catalog] = await Promise.all([getJSON("api/mindmap.json"), getJSON("api/catalog.json")]);
  const cards = Object.fromEntries(catalog.cards.map((c) => [c.id, c]));
  const colors = Object.fromEntries(catalog.families.map((f) => [f.id, f.color]));

  const filter = h("input", { type: "search", class: "search", placeholder: t("mind.filter"), autocomplete: "off" });
  const root = h("ul", { class: "tree" }, branch(tree, 0, null));
  const page = h("section", { class: "page mindmap-page narrow" },
    h("div", { class: "toolbar" },
      h("button", { type: "button", class: "btn small", id: "expand-all", onclick: () => setOpen(root, true) }, t("mind.expand")),
      h("button", { type: "button", class: "btn small", id: "collapse-all", onclick: () => setOpen(root, false) }, t("mind.collapse")),
      filter),
    h("div", { class: "mindmap" }, root));
  view.replaceChildren(page);

  filter.addEventListener("input", () => applyFilter(root, filter.value.trim().toLowerCase()));

  function branch(node, depth, family) {
    if (!node.children || !node.children.length) {
      const card = cards[node.card || node.id];
      return h("li", { class: "leaf", dataset: { search: [node.id, node.name, node.name_zh].join(" ").toLowerCase() } },
        h("a", { href: `#/card/${encodeURIComponent(node.card || node.id)}` },
          h("span", { class: "leaf-name" }, name(node)),
          card ? h("span", { class: "muted small" }, ` ${card.year}`) : null));
    }
    const fam = depth === 1 ? node.id : family;
    const leaves = countLeaves(node);
    const details = h("details", { open: depth < 2 },
      h("summary", { style: fam ? { "--fam": colors[fam] || "#888" } : null },
        h("span", { class: depth === 0 ? "node-root" : depth === 1 ? "node-family" : "node-sub" }, name(node)),
        depth > 0 && name(node, true) !== name(node) ? h("span", { class: "muted small" }, ` ${name(node, true)}`) : null,
        h("span", { class: "count" }, String(leaves))),
      h("ul", {}, node.children.map((c) => branch(c, depth + 1, fam))));
    return h("li", { class: `branch depth-${depth}`, style: fam ? { "--fam": colors[fam] || "#888" } : null }, details);
  }
}

function countLeaves(node) {
  return node.children && node.children.length ? node.children.reduce((n, c) => n + countLeaves(c), 0) : 1;
}

function setOpen(root, open) {
  for (const d of root.querySelectorAll("details")) d.open = open || d.parentElement.classList.contains("depth-0");
}

// Show only leaves that match, with their branches opened; an empty filter restores everything.
function applyFilter(root, q) {
  for (const li of root.querySelectorAll("li.leaf")) li.hidden = Boolean(q) && !li.dataset.search.includes(q);
  for (const li of [...root.querySelectorAll("li.branch")].reverse()) {
    const any = li.querySelector("li.leaf:not([hidden])");
    li.hidden = Boolean(q) && !any;
    if (q && any) li.querySelector("details").open = true;
  }
}
