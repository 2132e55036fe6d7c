// Formulas with KaTeX (loaded on first use): display equations, and `$...$` inline in prose.

import { h } from "./dom.js";

let katex = null;

export async function loadKatex() {
  katex ??= (await import("../vendor/katex/katex.mjs")).default;
  return katex;
}

export function tex(source, display = false) {
  const el = h(display ? "div" : "span", { class: display ? "math display" : "math" });
  try {
    katex.render(source, el, { displayMode: display, throwOnError: false, strict: "ignore" });
  } catch {
    el.textContent = source;
  }
  return el;
}

// `$x$` with no space just inside the dollars, and not a price like `$5 and $10`.
const INLINE = /\$(?=\S)([^$\n]*?\S)\$(?!\d)/g;

export function prose(text) {
  const out = [];
  let last = 0;
  for (const m of (text || "").matchAll(INLINE)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(tex(m[1]));
    last = m.index + m[0].length;
  }
  if (last < (text || "").length) out.push(text.slice(last));
  return out;
}
