"use strict";
// The report's record browser. Its records are embedded in #report-data as gzip'ed JSON in
// base64 (see report/collect.py `browser` for the shape). Every text is set with
// textContent, never parsed as HTML: the records are model output.
(function () {
  const PAGE = 50;
  const collator = new Intl.Collator(undefined, { sensitivity: "base" });
  const $ = (id) => document.getElementById(id);
  const state = { tab: "instructions", query: "", filter: "", sortKey: null, sortDir: 1, page: 0, open: null };
  let data = null, rows = { instructions: [], dropped: [] }, view = [];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  async function decode() {
    const text = $("report-data").textContent.trim();
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }

  const fixed = (x) => (x == null ? "" : Number(x).toFixed(2));
  const LABELS = { 1: "yes", 0: "no" };

  function instructionRows(d) {
    return d.instructions.map((r) => {
      const instances = r[6];
      const kept = instances.filter((x) => !x[2]).length;
      return { id: r[0], text: r[1], label: r[2], pool: r[3], seed: r[4], seedIdx: r[5], instances, kept,
               near: r[7], req: r[8], raw: r[9], vn: r[10], sources: r[11] || null, hay: null };
    });
  }

  function droppedRows(d) {
    return d.dropped.map((r, i) => ({ id: i, req: r[0], text: r[1], reason: r[2], hay: null }));
  }

  const COLUMNS = {
    instructions: [
      { key: "id", title: "#", width: "5em", num: true },
      { key: "text", title: "Instruction", width: "auto" },
      { key: "label", title: "Classification", width: "8.5em", show: (r) => (r.label == null ? "–" : LABELS[r.label]) },
      { key: "kept", title: "Instances kept", width: "7em", num: true, show: (r) => `${r.kept} / ${r.instances.length}` },
      { key: "pool", title: "ROUGE-L to pool", width: "7em", num: true, show: (r) => fixed(r.pool) },
      { key: "seed", title: "ROUGE-L to seed", width: "7em", num: true, show: (r) => fixed(r.seed) },
      { key: "vn", title: "Verb–noun", width: "9em" },
    ],
    dropped: [
      { key: "req", title: "Request", width: "6em", num: true },
      { key: "text", title: "Candidate", width: "auto" },
      { key: "reason", title: "Reason", width: "11em" },
    ],
  };

  const FILTERS = {
    instructions: [
      ["", "All instructions"], ["clf", "Classification"], ["notclf", "Not classification"],
      ["unlabelled", "Not labelled"], ["nokept", "No instance kept"], ["dropped", "Some instance dropped"],
    ],
  };
  const FILTER_TEST = {
    clf: (r) => r.label === 1, notclf: (r) => r.label === 0, unlabelled: (r) => r.label == null,
    nokept: (r) => r.kept === 0, dropped: (r) => r.kept < r.instances.length,
  };

  function haystack(r) {
    if (r.hay === null) {
      const parts = [r.text, r.vn || "", r.reason || ""];
      if (r.instances) for (const x of r.instances) parts.push(x[0], x[1], x[2]);
      r.hay = parts.join("\n").toLowerCase();
    }
    return r.hay;
  }

  function setFilters() {
    const select = $("filter");
    select.replaceChildren();
    let options = FILTERS[state.tab];
    if (state.tab === "dropped") {
      const counts = new Map();
      for (const r of rows.dropped) counts.set(r.reason, (counts.get(r.reason) || 0) + 1);
      options = [["", "All reasons"], ...[...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, `${k} (${n})`])];
    }
    for (const [value, label] of options) select.append(el("option", { value, text: label }));
    select.value = state.filter;
  }

  function compute() {
    const q = state.query.trim().toLowerCase();
    let list = rows[state.tab];
    if (state.filter) {
      list = state.tab === "dropped" ? list.filter((r) => r.reason === state.filter) : list.filter(FILTER_TEST[state.filter]);
    }
    if (q) list = list.filter((r) => haystack(r).includes(q));
    if (state.sortKey) {
      const key = state.sortKey, dir = state.sortDir;
      const missing = (v) => v == null || v === "";
      list = list.slice().sort((a, b) => {
        const x = a[key], y = b[key];
        if (missing(x) && missing(y)) return a.id - b.id;
        if (missing(x)) return 1;  // records without a value go last, either way
        if (missing(y)) return -1;
        const c = typeof x === "string" ? collator.compare(x, y) : x - y;
        return c !== 0 ? c * dir : a.id - b.id;
      });
    }
    view = list;
    state.page = Math.min(state.page, Math.max(0, Math.ceil(view.length / PAGE) - 1));
  }

  function renderHead() {
    const tr = el("tr");
    for (const col of COLUMNS[state.tab]) {
      const th = el("th", { scope: "col", style: `width:${col.width}`, "data-key": col.key, text: col.title, tabindex: "0" });
      if (state.sortKey === col.key) th.setAttribute("aria-sort", state.sortDir > 0 ? "ascending" : "descending");
      th.addEventListener("click", () => sortBy(col.key));
      th.addEventListener("keydown", (e) => { if (e.key === "Enter") sortBy(col.key); });
      tr.append(th);
    }
    $("grid").tHead.replaceChildren(tr);
  }

  function renderBody() {
    const body = $("grid").tBodies[0];
    const start = state.page * PAGE;
    const fragment = document.createDocumentFragment();
    for (const r of view.slice(start, start + PAGE)) {
      const tr = el("tr", { class: "row", "data-id": String(r.id), tabindex: "0", "aria-expanded": String(state.open === r) });
      for (const col of COLUMNS[state.tab]) {
        tr.append(el("td", { class: col.num ? "num" : "", text: col.show ? col.show(r) : String(r[col.key] ?? "") }));
      }
      tr.addEventListener("click", () => toggle(r));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(r); } });
      fragment.append(tr);
      if (state.open === r) { tr.classList.add("open"); fragment.append(detailRow(r)); }
    }
    body.replaceChildren(fragment);
    const pages = Math.max(1, Math.ceil(view.length / PAGE));
    $("page-number").value = String(state.page + 1);
    $("page-number").max = String(pages);
    $("pages").textContent = ` of ${pages.toLocaleString()}`;
    $("matches").textContent = `${view.length.toLocaleString()} of ${rows[state.tab].length.toLocaleString()} shown`;
    $("prev").disabled = $("first").disabled = state.page === 0;
    $("next").disabled = $("last").disabled = state.page >= pages - 1;
  }

  function render() { compute(); renderHead(); renderBody(); }

  function sortBy(key) {
    if (state.sortKey === key) state.sortDir = -state.sortDir; else { state.sortKey = key; state.sortDir = 1; }
    state.page = 0;
    render();
  }

  function toggle(r) {
    state.open = state.open === r ? null : r;
    renderBody();
  }

  function poolText(ref) {
    if (ref < 0) { const s = data.seeds[-ref - 1]; return s ? [`${s[0]} (seed)`, s[1]] : ["(seed)", "?"]; }
    const found = byId.get(ref);
    return [`#${ref}`, found ? found.text : "(not in this run)"];
  }

  function block(title, ...children) {
    return el("div", {}, el("h4", { text: title }), ...children);
  }

  function pre(text) { return el("pre", { text }); }

  function smallTable(head, lines) {
    const t = el("table");
    t.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { text: h })))));
    const b = el("tbody");
    for (const line of lines) b.append(el("tr", {}, ...line.map((c) => (c instanceof Node ? el("td", {}, c) : el("td", { text: String(c) })))));
    t.append(b);
    return t;
  }

  function detailRow(r) {
    const td = el("td", { colspan: String(COLUMNS[state.tab].length), class: "detail" });
    if (state.tab === "dropped") td.append(...droppedDetail(r)); else td.append(...instructionDetail(r));
    return el("tr", { class: "detail" }, td);
  }

  function instructionDetail(r) {
    const parts = [block("Instruction", pre(r.text))];
    if (r.raw != null) parts.push(block("Classification answer", pre(r.raw)));
    const verdict = (why, detail) => {
      const tag = el("span", { class: why ? "tag dropped" : "tag kept", text: why || "kept" });
      return detail ? el("span", {}, tag, el("span", { class: "detail", text: ` ${detail}` })) : tag;
    };
    parts.push(block(`Instances (${r.kept} of ${r.instances.length} kept)`,
      r.instances.length ? smallTable(["Input", "Output", "Prepare"], r.instances.map((x) => [pre(x[0] || "(empty)"), pre(x[1]), verdict(x[2], x[3])])) : el("p", { text: "No instance parsed (or not generated yet)." })));
    if (r.seedIdx >= 0) {
      const s = data.seeds[r.seedIdx];
      parts.push(block("Most similar seed", el("p", { text: `${fixed(r.seed)}  ${s[0]}: ${s[1]}` })));
    }
    parts.push(block("Nearest pool items when accepted", smallTable(["ROUGE-L", "Item", "Text"], r.near.map(([ref, score]) => [fixed(score), ...poolText(ref)]))));
    if (r.sources) {
      const items = [...r.sources[0].map((id) => [`${id} (seed)`, seedById.get(id) || "?"]), ...r.sources[1].map((id) => poolText(id))];
      parts.push(block("Seed and machine instructions in its prompt", smallTable(["Item", "Text"], items)));
    }
    parts.push(...requestBlock(r.req));
    return parts;
  }

  function requestBlock(idx) {
    const req = data.requests[String(idx)];
    if (!req) return [];
    const prompt = req[0].map((i) => data.lines[i]).join("\n");
    return [block(`Request ${idx} (finish: ${req[2] || "?"}; ${req[3]})`,
      el("details", {}, el("summary", { text: "Prompt" }), pre(prompt)),
      el("details", {}, el("summary", { text: "Answer" }), pre(req[1])))];
  }

  function droppedDetail(r) {
    return [block(`Dropped: ${r.reason}`, pre(r.text)), ...requestBlock(r.req)];
  }

  function switchTab(tab) {
    state.tab = tab; state.filter = ""; state.sortKey = null; state.page = 0; state.open = null;
    for (const b of document.querySelectorAll(".tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === tab));
    setFilters();
    render();
  }

  let byId = new Map(), seedById = new Map(), timer = null;

  function wire() {
    $("search").addEventListener("input", (e) => {
      clearTimeout(timer);
      timer = setTimeout(() => { state.query = e.target.value; state.page = 0; state.open = null; render(); }, 120);
    });
    $("filter").addEventListener("change", (e) => { state.filter = e.target.value; state.page = 0; render(); });
    for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => switchTab(b.dataset.tab));
    const go = (page) => { state.page = page; state.open = null; renderBody(); };
    $("first").addEventListener("click", () => go(0));
    $("prev").addEventListener("click", () => go(Math.max(0, state.page - 1)));
    $("next").addEventListener("click", () => go(state.page + 1));
    $("last").addEventListener("click", () => go(Math.max(0, Math.ceil(view.length / PAGE) - 1)));
    $("page-number").addEventListener("change", (e) => {
      const wanted = parseInt(e.target.value, 10);
      const pages = Math.max(1, Math.ceil(view.length / PAGE));
      go(Number.isFinite(wanted) ? Math.min(pages, Math.max(1, wanted)) - 1 : state.page);
    });
  }

  async function start() {
    try {
      data = await decode();
      rows.instructions = instructionRows(data);
      rows.dropped = droppedRows(data);
      byId = new Map(rows.instructions.map((r) => [r.id, r]));
      seedById = new Map(data.seeds.map((s) => [s[0], s[1]]));
      $("n-instructions").textContent = rows.instructions.length.toLocaleString();
      $("n-dropped").textContent = rows.dropped.length.toLocaleString();
      wire();
      setFilters();
      render();
      $("browser-status").textContent = "";
      document.body.dataset.ready = "1";
    } catch (err) {
      $("browser-status").textContent = `The records could not be read in this browser (${err}). Everything above this section is complete without them.`;
      document.body.dataset.ready = "error";
    }
  }

  start();
})();
