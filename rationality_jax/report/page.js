// report.html: every prediction and its evidence, filtered, sorted and paged
// in the browser (no server, no network). The data is the JSON above,
// written by rationality_jax/report/html.py; thumbnails are files in gallery/.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const CELLS = DATA.cells; // RR, RW, WR, WW, undefined; "-": not evaluated
  const MISSING = 255;
  const FILTERS = [
    ["any", "any"], ["RR", "RR"], ["RW", "RW"], ["WR", "WR"], ["WW", "WW"],
    ["right", "right (RR+RW)"], ["wrong", "wrong (WR+WW)"],
    ["valid", "valid (RR+WR)"], ["invalid", "invalid (RW+WW)"],
    ["undefined", "undefined"], ["missing", "not evaluated"],
  ];
  const MATCH = {
    RR: (c) => c === 0, RW: (c) => c === 1, WR: (c) => c === 2,
    WW: (c) => c === 3, right: (c) => c === 0 || c === 1,
    wrong: (c) => c === 2 || c === 3, valid: (c) => c === 0 || c === 2,
    invalid: (c) => c === 1 || c === 3, undefined: (c) => c === 4,
    missing: (c) => c === MISSING,
  };
  const $ = (id) => document.getElementById(id);

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }

  const state = {
    group: 0, cls: -1, filters: {}, shown: {}, thumbsOnly: false, q: "",
    sort: "illustrated", a: 0, b: 1, desc: true, page: 0, size: 50,
  };

  // Columns decoded once per group: typed arrays for fast filtering.
  function decode(g) {
    if (g.decoded) return g.decoded;
    const n = g.ids.length;
    const flags = (text) => {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = text.charCodeAt(i) === 49 ? 1 : 0;
      return out;
    };
    const numbers = (values, scale) => {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = values ? values[i] : null;
        out[i] = v === null || v === undefined ? NaN : v / scale;
      }
      return out;
    };
    const runs = g.runs.map((run) => {
      const cell = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const c = run.cell.charCodeAt(i);
        cell[i] = c === 45 ? MISSING : c - 48;
      }
      return {
        cell, thumb: flags(run.thumb), rma: numbers(run.rma, 1000),
        conf: numbers(run.conf, 1000),
      };
    });
    g.decoded = { runs, image: flags(g.image) };
    return g.decoded;
  }

  const group = () => DATA.groups[state.group];
  const shownRuns = () =>
    group().runs.map((_, r) => r).filter((r) => state.shown[r] !== false);
  const className = (g, label) =>
    label < 0 ? "?" : g.classes && g.classes[label] !== undefined
      ? g.classes[label] : "class " + label;
  const pct = (v) => (v === null || v === undefined ? "-" : (100 * v).toFixed(1));

  function matching() {
    const g = group(), d = decode(g), n = g.ids.length;
    const active = Object.entries(state.filters)
      .filter(([, f]) => f && f !== "any")
      .map(([r, f]) => [d.runs[Number(r)].cell, MATCH[f]]);
    const shown = shownRuns();
    const q = state.q.toLowerCase();
    const out = [];
    for (let i = 0; i < n; i++) {
      if (state.cls >= 0 && g.label[i] !== state.cls) continue;
      let ok = true;
      for (const [cell, match] of active) {
        if (!match(cell[i])) { ok = false; break; }
      }
      if (!ok) continue;
      if (state.thumbsOnly && !shown.some((r) => d.runs[r].thumb[i])) continue;
      if (q && !g.ids[i].toLowerCase().includes(q)) continue;
      out.push(i);
    }
    return sortRows(out, g, d, shown);
  }

  function sortRows(rows, g, d, shown) {
    const sign = state.desc ? -1 : 1;
    const a = d.runs[state.a] || d.runs[0], b = d.runs[state.b] || d.runs[0];
    let key = null;
    if (state.sort === "rma") key = a.rma;
    else if (state.sort === "confidence") key = a.conf;
    else if (state.sort === "delta") key = b.rma.map((v, i) => v - a.rma[i]);
    if (state.sort === "illustrated") {
      const count = new Uint8Array(g.ids.length);
      for (const i of rows) {
        for (const r of shown) count[i] += d.runs[r].thumb[i];
      }
      rows.sort((x, y) => count[y] - count[x] || g.index[x] - g.index[y]);
    } else if (key === null) {
      rows.sort((x, y) => sign * (g.index[x] - g.index[y]));
    } else {  // NaN (undefined, not evaluated) last either way
      rows.sort((x, y) => {
        const kx = key[x], ky = key[y];
        if (Number.isNaN(kx) || Number.isNaN(ky)) {
          return Number.isNaN(kx) - Number.isNaN(ky) || g.index[x] - g.index[y];
        }
        return sign * (kx - ky) || g.index[x] - g.index[y];
      });
    }
    return rows;
  }

  function thumb(src, alt) {
    return el("img", { src, alt, loading: "lazy", width: 128, height: 128 });
  }

  function panel(g, d, r, i) {
    const run = g.runs[r], col = d.runs[r], c = col.cell[i];
    if (c === MISSING) {
      return el("figure", { class: "panel" },
        el("div", { class: "blank", text: "not evaluated" }),
        el("figcaption", {}, el("span", { class: "name", text: run.name })));
    }
    const pred = run.pred[i];
    const right = c === 0 || c === 1 || (c === 4 && pred === g.label[i]);
    const image = col.thumb[i]
      ? thumb(`gallery/${g.dir}/${run.dir}/${i}.${DATA.ext}`,
        `${run.name} heatmap of ${g.ids[i]}`)
      : el("div", { class: "blank", text: "no thumbnail" });
    const conf = Number.isNaN(col.conf[i]) ? "conf -" : `conf ${col.conf[i].toFixed(3)}`;
    const rma = Number.isNaN(col.rma[i]) ? "-" : col.rma[i].toFixed(3);
    return el("figure", { class: `panel c${c}` }, image,
      el("figcaption", {},
        el("span", { class: "name", text: run.name }), " ",
        el("span", { class: "badge", text: CELLS[c] }), el("br"),
        el("span", {
          class: right ? "right" : "wrong",
          text: (right ? "\u2713 " : "\u2717 ") +
            (pred < 0 ? "undefined" : className(g, pred)),
        }), el("br"),
        `RMA ${rma}`, el("br"), conf));
  }

  function sampleRow(g, d, i, shown) {
    const image = d.image[i]
      ? thumb(`gallery/${g.dir}/${i}.${DATA.ext}`, `image ${g.ids[i]}`)
      : el("div", { class: "blank", text: "no thumbnail" });
    return el("article", { class: "sample", "data-sample": g.ids[i] },
      el("header", {},
        el("span", { class: "sid", text: `#${g.index[i]}  ${g.ids[i]}` }),
        el("span", { class: "cls", text: className(g, g.label[i]) })),
      el("div", { class: "panels" },
        el("figure", { class: "panel" }, image,
          el("figcaption", { class: "muted", text: "image, mask outline" })),
        ...shown.map((r) => panel(g, d, r, i))));
  }

  // The filtered, sorted rows, kept while only the page changes.
  let cache = { key: "", rows: [] };

  function render() {
    const start = performance.now();
    const g = group(), d = decode(g), shown = shownRuns();
    const key = JSON.stringify([state.group, state.cls, state.filters, state.shown,
      state.thumbsOnly, state.q, state.sort, state.a, state.b, state.desc]);
    if (cache.key !== key) cache = { key, rows: matching() };
    const rows = cache.rows;
    const matched = performance.now();
    const pages = Math.max(1, Math.ceil(rows.length / state.size));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const first = state.page * state.size;
    const fragment = document.createDocumentFragment();
    for (const i of rows.slice(first, first + state.size)) {
      fragment.append(sampleRow(g, d, i, shown));
    }
    $("samples").replaceChildren(fragment);
    const count = $("count");
    count.dataset.count = rows.length;
    count.textContent = `${rows.length} of ${g.ids.length} samples`;
    for (const node of document.querySelectorAll(".page-of")) {
      node.textContent = `page ${state.page + 1} of ${pages}`;
    }
    for (const node of document.querySelectorAll(".prev")) node.disabled = state.page === 0;
    for (const node of document.querySelectorAll(".next")) node.disabled = state.page >= pages - 1;
    writeHash();
    const end = performance.now();
    window.lastUpdateMs = end - start;
    window.lastTimings = { match: matched - start, render: end - matched };
  }

  function summary() {
    const g = group();
    const head = ["run", "method", "heatmap", "n", "accuracy", "PT", "IR",
      "RR", "RW", "WR", "WW", "undefined", "thumbnails"];
    const d = decode(g);
    const table = el("table", {},
      el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { text: h })))),
      el("tbody", {}, ...g.runs.map((run, r) => {
        const s = run.summary;
        const thumbs = d.runs[r].thumb.reduce((x, y) => x + y, 0);
        return el("tr", {}, ...[run.name, run.method, run.heatmap, s.n,
          pct(s.accuracy), pct(s.pt), pct(s.ir), s.rr, s.rw, s.wr, s.ww,
          s.undefined, thumbs].map((v) => el("td", { text: v })));
      })));
    const parts = [el("h2", { text: `${g.title}: ${g.runs.length} run(s), ${g.ids.length} samples` }), table];
    if (g.transitions.length) {
      parts.push(el("h3", { text: "Transitions from zero-shot (click a count to list its samples)" }));
      parts.push(el("div", { class: "matrices" }, ...g.transitions.map(matrix)));
    }
    $("summary").replaceChildren(...parts);
  }

  function matrix(t) {
    const g = group(), from = g.runs[t.from].name, to = g.runs[t.to].name;
    const keep = [0, 1, 2, 3];
    if (t.matrix[4].some((v) => v) || t.matrix.some((row) => row[4])) keep.push(4);
    const cellButton = (i, j) => {
      const v = t.matrix[i][j];
      const button = el("button", {
        type: "button", text: v, title: `${CELLS[i]} under ${from}, ${CELLS[j]} under ${to}`,
      });
      button.addEventListener("click", () => {
        state.filters = { [t.from]: CELLS[i], [t.to]: CELLS[j] };
        state.page = 0;
        controls();
        render();
      });
      return el("td", { class: i === j ? "same" : "" }, v ? button : "0");
    };
    return el("table", { class: "matrix" },
      el("caption", { text: `${from} \u2192 ${to}` }),
      el("thead", {}, el("tr", {}, el("th", { text: `${from} \\ ${to}` }),
        ...keep.map((j) => el("th", {}, el("span", { class: `badge c${j}`, text: CELLS[j] }))))),
      el("tbody", {}, ...keep.map((i) => el("tr", {},
        el("th", {}, el("span", { class: `badge c${i}`, text: CELLS[i] })),
        ...keep.map((j) => cellButton(i, j))))));
  }

  function options(select, items, value) {
    select.replaceChildren(...items.map(([v, text]) => el("option", { value: v, text })));
    select.value = String(value);
  }

  function controls() {
    const g = group();
    const models = [...new Set(DATA.groups.map((x) => x.model))];
    options($("model"), models.map((m) => [m, m]), g.model);
    options($("dataset"), DATA.groups.map((x, k) => [k, x]).filter(([, x]) => x.model === g.model)
      .map(([k, x]) => [k, x.split ? `${x.dataset} (${x.split})` : x.dataset]), state.group);
    const counts = new Map();
    for (const label of g.label) counts.set(label, (counts.get(label) || 0) + 1);
    const labels = [...counts.keys()].sort((x, y) => x - y);
    options($("class"), [[-1, `all (${labels.length})`],
      ...labels.map((l) => [l, `${className(g, l)} (${counts.get(l)})`])], state.cls);
    const runs = g.runs.map((run, r) => [r, run.name]);
    options($("sort-a"), runs, state.a);
    options($("sort-b"), runs, state.b);
    $("sort").value = state.sort;
    $("order").value = state.desc ? "desc" : "asc";
    $("page-size").value = String(state.size);
    $("thumbs-only").checked = state.thumbsOnly;
    $("search").value = state.q;
    $("cell-filters").replaceChildren(el("span", { class: "muted", text: "cell under:" }),
      ...g.runs.map((run, r) => {
        const select = el("select", { id: `cell-${r}`, "data-run": run.name });
        options(select, FILTERS, state.filters[r] || "any");
        select.addEventListener("change", () => {
          state.filters[r] = select.value; state.page = 0; render();
        });
        const show = el("input", { type: "checkbox", checked: state.shown[r] !== false, title: "show this run's column" });
        show.addEventListener("change", () => { state.shown[r] = show.checked; render(); });
        return el("label", {}, show, ` ${run.name} `, select);
      }));
  }

  function writeHash() {
    const f = Object.entries(state.filters).filter(([, v]) => v && v !== "any")
      .map(([r, v]) => `${r}:${v}`).join(",");
    const hidden = Object.entries(state.shown).filter(([, v]) => v === false).map(([r]) => r).join(",");
    const parts = { g: state.group, c: state.cls, f, h: hidden, t: state.thumbsOnly ? 1 : 0,
      q: state.q, s: state.sort, a: state.a, b: state.b, o: state.desc ? "desc" : "asc",
      p: state.page, n: state.size };
    const hash = "#" + new URLSearchParams(parts).toString();
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    const int = (k, d) => (p.has(k) && !Number.isNaN(parseInt(p.get(k), 10)) ? parseInt(p.get(k), 10) : d);
    state.group = Math.min(Math.max(0, int("g", 0)), DATA.groups.length - 1);
    state.cls = int("c", -1);
    state.filters = {};
    for (const item of (p.get("f") || "").split(",").filter(Boolean)) {
      const [r, v] = item.split(":");
      if (MATCH[v]) state.filters[r] = v;
    }
    state.shown = {};
    for (const r of (p.get("h") || "").split(",").filter(Boolean)) state.shown[r] = false;
    state.thumbsOnly = p.get("t") === "1";
    state.q = p.get("q") || "";
    state.sort = ["illustrated", "index", "rma", "delta", "confidence"].includes(p.get("s")) ? p.get("s") : "illustrated";
    const runs = group().runs.length;
    state.a = Math.min(int("a", 0), runs - 1);
    state.b = Math.min(int("b", Math.min(1, runs - 1)), runs - 1);
    state.desc = p.get("o") !== "asc";
    state.page = int("p", 0);
    state.size = [25, 50, 100, 200].includes(int("n", 50)) ? int("n", 50) : 50;
  }

  function resetFor(groupIndex) {
    state.group = groupIndex; state.cls = -1; state.filters = {}; state.shown = {};
    state.thumbsOnly = false; state.q = ""; state.sort = "illustrated"; state.desc = true;
    state.a = 0; state.b = Math.min(1, group().runs.length - 1); state.page = 0;
    summary(); controls(); render();
  }

  function wire() {
    const on = (id, event, f) => $(id).addEventListener(event, f);
    on("model", "change", () => resetFor(DATA.groups.findIndex((x) => x.model === $("model").value)));
    on("dataset", "change", () => resetFor(Number($("dataset").value)));
    on("class", "change", () => { state.cls = Number($("class").value); state.page = 0; render(); });
    on("thumbs-only", "change", () => { state.thumbsOnly = $("thumbs-only").checked; state.page = 0; render(); });
    let timer = 0;
    on("search", "input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => { state.q = $("search").value.trim(); state.page = 0; render(); }, 150);
    });
    on("sort", "change", () => {
      state.sort = $("sort").value; state.page = 0;
      render();
    });
    on("sort-a", "change", () => { state.a = Number($("sort-a").value); state.page = 0; render(); });
    on("sort-b", "change", () => { state.b = Number($("sort-b").value); state.page = 0; render(); });
    on("order", "change", () => { state.desc = $("order").value === "desc"; state.page = 0; render(); });
    on("page-size", "change", () => { state.size = Number($("page-size").value); state.page = 0; render(); });
    on("reset", "click", () => resetFor(state.group));
    for (const node of document.querySelectorAll(".prev")) {
      node.addEventListener("click", () => { state.page -= 1; render(); });
    }
    for (const node of document.querySelectorAll(".next")) {
      node.addEventListener("click", () => { state.page += 1; render(); });
    }
  }

  $("about").textContent = DATA.about;
  if (!DATA.groups.length) {
    $("samples").textContent = "No evaluated runs.";
  } else {
    readHash();
    wire();
    summary();
    controls();
    render();
  }
  window.reportReady = performance.now();
  document.documentElement.dataset.ready = "1";
})();
