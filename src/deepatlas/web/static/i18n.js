// The interface's two languages. The choice is kept in localStorage and applies to every page.

const KEY = "deepatlas.lang";
const listeners = new Set();

export let lang = localStorage.getItem(KEY) === "zh" ? "zh" : "en";

export function setLang(next) {
  lang = next === "zh" ? "zh" : "en";
  localStorage.setItem(KEY, lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const fn of listeners) fn(lang);
}

export function onLang(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

// A catalogue object's name in the current language; `other` gives the other one.
export function name(o, other = false) {
  const zh = o.name_zh ?? o.label_zh, en = o.name ?? o.label;
  return (lang === "zh") !== other ? zh || en : en || zh;
}

export function t(key, vars = {}) {
  const entry = STRINGS[key];
  let text = entry ? entry[lang] ?? entry.en : key;
  for (const [k, v] of Object.entries(vars)) text = text.replaceAll(`{${k}}`, v);
  return text;
}

// Fill elements marked with data-i18n (the static shell in index.html).
export function translateShell(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

const STRINGS = {
  "nav.graph": { en: "Genealogy", zh: "谱系" },
  "nav.mindmap": { en: "Mind map", zh: "思维导图" },
  "nav.roadmap": { en: "Roadmap", zh: "路线图" },
  "nav.labs": { en: "Labs", zh: "实验" },
  "mode.static": { en: "read-only snapshot", zh: "只读快照" },
  "lang.switch": { en: "中文", zh: "EN" },
  "error": { en: "Something went wrong", zh: "出错了" },

  "graph.search": { en: "Search cards…", zh: "搜索卡片…" },
  "graph.filters": { en: "Filters", zh: "筛选" },
  "graph.families": { en: "Families", zh: "家族" },
  "graph.stage": { en: "Stage", zh: "阶段" },
  "graph.allStages": { en: "All stages", zh: "全部阶段" },
  "graph.kinds": { en: "Kinds", zh: "类型" },
  "graph.all": { en: "all", zh: "全选" },
  "graph.none": { en: "none", zh: "清空" },
  "graph.reset": { en: "Reset", zh: "重置" },
  "graph.fit": { en: "Fit", zh: "适应窗口" },
  "graph.shown": { en: "{n} of {total} cards", zh: "显示 {n} / {total} 张卡片" },
  "graph.matches": { en: "{n} matches", zh: "{n} 个匹配" },
  "graph.hint": { en: "Click a node to trace its lineage; click it again to open its card.",
                  zh: "单击节点查看其祖先与后代；再次单击打开卡片。" },
  "graph.lineage": { en: "{a} ancestors · {d} descendants", zh: "{a} 个祖先 · {d} 个后代" },
  "graph.open": { en: "Open card →", zh: "打开卡片 →" },
  "graph.edges": { en: "Edges", zh: "连线" },

  "kind.architecture": { en: "architecture", zh: "架构" },
  "kind.technique": { en: "technique", zh: "技术" },
  "kind.concept": { en: "concept", zh: "概念" },
  "kind.system": { en: "system", zh: "系统" },
  "edge.descends_from": { en: "descends from", zh: "源自" },
  "edge.variant_of": { en: "variant of", zh: "变体" },
  "edge.inspired_by": { en: "inspired by", zh: "受启发于" },
  "edge.component_of": { en: "part of", zh: "组成部分" },
  "edge.built_from": { en: "component", zh: "组件" },
  "edge.used_in": { en: "used in", zh: "用于" },

  "mind.expand": { en: "Expand all", zh: "全部展开" },
  "mind.collapse": { en: "Collapse all", zh: "全部折叠" },
  "mind.filter": { en: "Filter…", zh: "筛选…" },

  "card.stage": { en: "Stage {n}", zh: "第 {n} 阶段" },
  "card.difficulty": { en: "difficulty", zh: "难度" },
  "card.paper": { en: "Paper", zh: "论文" },
  "card.equations": { en: "Equations", zh: "公式" },
  "card.lineage": { en: "Lineage", zh: "谱系" },
  "card.parents": { en: "Grew out of", zh: "源于" },
  "card.children": { en: "Led to", zh: "衍生" },
  "card.claims": { en: "Claims", zh: "论断" },
  "card.labs": { en: "Labs", zh: "实验" },
  "card.source": { en: "Implementation", zh: "实现代码" },
  "card.lines": { en: "{n} lines", zh: "{n} 行" },
  "card.noclaims": { en: "No claims recorded for this card yet.", zh: "这张卡片还没有论断。" },
  "card.seed": { en: "from document {s}", zh: "出自文档 {s}" },
  "card.lab": { en: "lab {l}", zh: "实验 {l}" },
  "card.origin.snapshot": { en: "snapshot", zh: "快照" },
  "card.origin.run": { en: "your run", zh: "你的运行" },
  "card.measured": { en: "measured", zh: "实测" },
  "card.last": { en: "Last result", zh: "最近结果" },
  "card.nolast": { en: "Not measured yet.", zh: "尚未测量。" },
  "card.budget": { en: "budget {s} s", zh: "预算 {s} 秒" },
  "card.runQuick": { en: "Run quick", zh: "快速运行" },
  "card.runDefault": { en: "Run default", zh: "默认规模运行" },
  "card.yourRuns": { en: "Your runs", zh: "你的运行记录" },
  "card.graph": { en: "Show in genealogy", zh: "在谱系中查看" },
  "card.claimsOnly": { en: "judges claims only", zh: "仅检验论断" },

  "verdict.supported": { en: "supported", zh: "支持" },
  "verdict.refuted": { en: "refuted", zh: "反驳" },
  "verdict.pending": { en: "pending", zh: "待验证" },
  "verdict.not_checkable": { en: "not checkable", zh: "无法检验" },

  "road.title": { en: "Study roadmap", zh: "学习路线图" },
  "road.overall": { en: "Overall", zh: "总体" },
  "road.weeks": { en: "{lo}–{hi} weeks", zh: "{lo}–{hi} 周" },
  "road.export": { en: "Export", zh: "导出" },
  "road.note": { en: "Your progress is shared with the command line:", zh: "进度与命令行共享：" },
  "state.done": { en: "done", zh: "已完成" },
  "state.learning": { en: "learning", zh: "学习中" },
  "state.skipped": { en: "skipped", zh: "跳过" },
  "state.pending": { en: "pending", zh: "未开始" },

  "labs.title": { en: "Labs", zh: "实验" },
  "labs.filter": { en: "Filter labs…", zh: "筛选实验…" },
  "labs.count": { en: "{n} labs", zh: "{n} 个实验" },
  "labs.queue": { en: "Queue", zh: "队列" },
  "labs.empty": { en: "No runs yet: start one below or from a card.", zh: "还没有运行：在下方或卡片页启动一个实验。" },
  "labs.cancel": { en: "Cancel", zh: "取消" },
  "labs.view": { en: "View", zh: "查看" },
  "labs.seed": { en: "seed", zh: "种子" },
  "labs.quick": { en: "quick", zh: "快速" },
  "labs.default": { en: "default", zh: "默认" },
  "labs.static": { en: "This is a read-only snapshot; to run labs, start the local atlas:", zh: "这是只读快照；要运行实验，请启动本地图谱：" },
  "labs.position": { en: "#{n} in queue", zh: "队列第 {n} 位" },
  "labs.rows": { en: "{n} rows", zh: "{n} 行" },
  "labs.curve": { en: "Live curve", zh: "实时曲线" },
  "labs.result": { en: "Result", zh: "结果" },
  "labs.goals": { en: "Goals", zh: "目标" },
  "labs.openCard": { en: "Open the card", zh: "打开卡片" },
  "labs.unknownJob": { en: "Unknown job.", zh: "未知任务。" },
  "job.queued": { en: "queued", zh: "排队中" },
  "job.running": { en: "running", zh: "运行中" },
  "job.done": { en: "done", zh: "完成" },
  "job.failed": { en: "failed", zh: "失败" },
  "job.cancelled": { en: "cancelled", zh: "已取消" },
  "pass": { en: "pass", zh: "达成" },
  "fail": { en: "fail", zh: "未达成" },
};
