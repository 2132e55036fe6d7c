// The single-page app: read the session, then route `#/page/arg` to a page module. Each page's
// `render(view, args)` may return {destroy(), relang()}: destroy stops its timers when we leave,
// relang redraws text in place when the language changes (otherwise the page is rendered again).

import { getSession } from "./api.js";
import { h } from "./dom.js";
import { lang, onLang, setLang, t, translateShell } from "./i18n.js";

const PAGES = {
  graph: () => import("./graph.js"),
  mindmap: () => import("./mindmap.js"),
  card: () => import("./card.js"),
  roadmap: () => import("./roadmap.js"),
  labs: () => import("./labs.js"),
};

const view = document.getElementById("view");
let current = null;   // the shown page's controller
let renderId = 0;     // guards against a slow page finishing after the user moved on

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = PAGES[parts[0]] ? parts[0] : "graph";
  return { page, args: PAGES[parts[0]] ? parts.slice(1) : [] };
}

async function route() {
  const id = ++renderId;
  const { page, args } = parseHash();
  current?.destroy?.();
  current = null;
  for (const a of document.querySelectorAll(".nav a")) {
    a.classList.toggle("active", a.dataset.page === page);
  }
  document.body.dataset.page = page;
  try {
    const mod = await PAGES[page]();
    if (id !== renderId) return;
    const ctl = await mod.render(view, args);
    if (id !== renderId) {
      ctl?.destroy?.();
      return;
    }
    current = ctl || {};
    current.page = page;
  } catch (err) {
    if (id !== renderId) return;
    console.error(err);
    view.replaceChildren(h("div", { class: "page narrow" },
      h("div", { class: "notice error" }, h("strong", {}, t("error")), " — ", err.message || String(err))));
  }
}

function applyLang() {
  translateShell();
  document.getElementById("lang-toggle").textContent = t("lang.switch");
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

async function boot() {
  PAGES[parseHash().page]().catch(() => {});  // fetch the first page's code while the session is read
  const session = await getSession();
  document.body.classList.toggle("live", Boolean(session.live));
  document.body.classList.toggle("static", !session.live);
  document.getElementById("mode").hidden = Boolean(session.live);
  applyLang();
  document.getElementById("lang-toggle").addEventListener("click", () => setLang(lang === "zh" ? "en" : "zh"));
  onLang(() => {
    applyLang();
    if (current?.relang) current.relang();
    else route();
  });
  window.addEventListener("hashchange", route);
  if (!location.hash) history.replaceState(null, "", "#/graph");
  await route();
}

boot();
