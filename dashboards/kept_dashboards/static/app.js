// kept's built-in live dashboard: lays out the panel spec from /v1/dashboard, fetches each
// panel's rows from /v1/panels/{id} and draws them as SVG. No framework, no CDN.
"use strict";
const COLORS = ["#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899",
  "#84cc16", "#64748b", "#f97316"];
const NAMED = { green: "#1a9a5b", orange: "#e08a00", red: "#d6453d" };
const NS = "http://www.w3.org/2000/svg";
const state = { spec: null, timer: null, samples: {}, refreshes: 0 };
window.kept = state;

function params() {
  const form = document.getElementById("filters");
  const p = new URLSearchParams({ from: form.range.value, to: "now" });
  for (const name of ["project", "model", "prompt_version"]) {
    if (form[name].value) p.set(name, form[name].value);
  }
  return p;
}

function headers() {
  const key = localStorage.getItem("kept-key");
  return key ? { Authorization: "Bearer " + key } : {};
}

async function getJSON(url) {
  const r = await fetch(url, { headers: headers(), cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || r.statusText);
  return body;
}

function fmt(value, unit, decimals) {
  if (value === null || value === undefined) return "–";
  const d = decimals ?? (Math.abs(value) >= 100 ? 0 : 2);
  switch (unit) {
    case "percentunit": return (value * 100).toFixed(decimals ?? 1) + "%";
    case "ms": return value >= 1000 ? (value / 1000).toFixed(2) + " s" : value.toFixed(0) + " ms";
    case "s": return value < 1 ? (value * 1000).toFixed(1) + " ms" : value.toFixed(2) + " s";
    case "currencyUSD": return "$" + value.toFixed(decimals ?? 2);
    case "reqps": return value.toFixed(1) + "/s";
    default:
      if (Math.abs(value) >= 1e6) return (value / 1e6).toFixed(2) + "M";
      return Number.isInteger(value) ? value.toLocaleString("en-US") : value.toFixed(d);
  }
}

function colorFor(panel, value) {
  let color = panel.thresholds[0]?.color || "green";
  for (const t of panel.thresholds) if (t.value !== null && value >= t.value) color = t.color;
  return NAMED[color] || color;
}

function el(tag, attrs = {}, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function stat(body, panel, value, caption) {
  const box = el("div", { class: "stat" });
  const v = el("div", { class: "value" }, fmt(value, panel.unit, panel.decimals));
  if (value !== null) v.style.color = panel.viz === "stat" ? colorFor(panel, value) : "";
  box.append(v);
  if (caption) box.append(el("div", { class: "caption" }, caption));
  body.append(box);
}

function legend(body, names) {
  const box = el("div", { class: "legend" });
  names.forEach((n, i) => {
    const item = el("span");
    const swatch = el("i");
    swatch.style.background = COLORS[i % COLORS.length];
    item.append(swatch, n);
    box.append(item);
  });
  body.append(box);
}

function timeseries(body, panel, rows) {
  // time, [series], value: one line per series.
  const hasSeries = panel.columns.length > 2 && typeof rows[0]?.[1] === "string";
  const byName = new Map();
  for (const r of rows) {
    const name = hasSeries ? r[1] : panel.columns[1];
    if (!byName.has(name)) byName.set(name, []);
    byName.get(name).push([r[0], r[hasSeries ? 2 : 1]]);
  }
  const W = 600, H = 200, L = 46, B = 18;
  const pts = rows.map((r) => r[hasSeries ? 2 : 1]).filter((v) => v !== null);
  const xs = rows.map((r) => r[0]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) || x0 + 1;
  const y0 = panel.min ?? Math.min(0, ...pts), y1 = panel.max ?? Math.max(...pts, y0 + 1e-9);
  const X = (t) => L + ((t - x0) / (x1 - x0 || 1)) * (W - L - 6);
  const Y = (v) => 6 + (1 - (v - y0) / (y1 - y0 || 1)) * (H - B - 6);
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    svg.append(el("svg:line", { class: "grid-line", x1: L, x2: W, y1: Y(v), y2: Y(v) }));
    svg.append(el("svg:text", { x: L - 4, y: Y(v) + 3, "text-anchor": "end" },
      fmt(v, panel.unit, panel.unit === "percentunit" || y1 - y0 >= 4 ? 0 : undefined)));
  }
  for (let i = 0; i <= 3; i++) {
    const t = x0 + ((x1 - x0) * i) / 3;
    const label = new Date(t).toISOString().slice(11, 16);
    svg.append(el("svg:text", { x: X(t), y: H - 4, "text-anchor": i ? (i === 3 ? "end" : "middle") : "start" }, label));
  }
  [...byName.values()].forEach((points, i) => {
    const d = points.filter((p) => p[1] !== null)
      .map((p, j) => (j ? "L" : "M") + X(p[0]).toFixed(1) + " " + Y(p[1]).toFixed(1)).join(" ");
    svg.append(el("svg:path", { d, fill: "none", stroke: COLORS[i % COLORS.length],
      "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
  });
  const wrap = el("div");
  wrap.style.height = "calc(100% - 18px)";
  wrap.append(svg);
  body.append(wrap);
  legend(body, [...byName.keys()]);
}

function barchart(body, panel, rows) {
  // label, value columns...: horizontal bars, one colour per value column.
  const values = panel.columns.slice(1);
  const max = panel.max ?? Math.max(...rows.flatMap((r) => r.slice(1)), 1e-9);
  const table = el("div");
  for (const r of rows) {
    const line = el("div");
    line.style.cssText = "display:flex;align-items:center;gap:.5rem;margin:.15rem 0";
    const label = el("span", {}, String(r[0]));
    label.style.cssText = "width:32%;overflow:hidden;text-overflow:ellipsis;white-space:nowrap";
    const bars = el("div");
    bars.style.cssText = "flex:1;display:flex;flex-direction:column;gap:2px";
    values.forEach((_, i) => {
      const bar = el("div", { title: `${values[i]}: ${fmt(r[i + 1], panel.unit, panel.decimals)}` });
      const pct = r[i + 1] === null ? 0 : Math.max(0.5, (100 * r[i + 1]) / max);
      bar.style.cssText = `height:${values.length > 1 ? 8 : 14}px;width:${pct}%;border-radius:2px;` +
        `background:${COLORS[i % COLORS.length]}`;
      bars.append(bar);
    });
    const text = el("span", {}, values.map((_, i) => fmt(r[i + 1], panel.unit, panel.decimals)).join(" / "));
    text.style.cssText = "width:28%;text-align:right;font-variant-numeric:tabular-nums";
    line.append(label, bars, text);
    table.append(line);
  }
  body.append(table);
  if (values.length > 1) legend(body, values);
}

function table(body, panel, rows) {
  const t = el("table");
  const head = el("tr");
  panel.columns.forEach((c) => head.append(el("th", {}, c.replaceAll("_", " "))));
  t.append(head);
  for (const r of rows) {
    const tr = el("tr");
    r.forEach((v, i) => tr.append(el("td", {}, typeof v === "number" && !Number.isInteger(v)
      ? fmt(v, panel.unit, panel.decimals) : String(v ?? "–"))));
    t.append(tr);
  }
  body.append(t);
}

const VERDICTS = { worse: "red", better: "green", "no detectable difference": "muted",
  "not enough data": "muted" };

function points(v) {
  return v === null || v === undefined ? "–" : (v >= 0 ? "+" : "") + (100 * v).toFixed(1);
}

function rollouts(body, panel, rows) {
  // One line per candidate against its baseline: the verdict and the metric behind it,
  // with its always-valid interval of candidate - baseline in points and both n.
  const col = Object.fromEntries(panel.columns.map((c, i) => [c, i]));
  const t = el("table", { class: "rollouts" });
  const head = el("tr");
  for (const c of ["rollout", "baseline", "verdict", "evidence", "difference", "always-valid interval", "n / baseline n"]) {
    head.append(el("th", {}, c));
  }
  t.append(head);
  for (const r of rows) {
    const tr = el("tr", { "data-verdict": r[col.verdict], "data-candidate": r[col.candidate] });
    const kind = r[col.key] === "model" ? "model" : "prompt version";
    const verdict = el("td");
    verdict.append(el("span", { class: "verdict " + VERDICTS[r[col.verdict]] }, r[col.verdict]));
    const metric = `${r[col.metric].replaceAll("_", " ")} (${r[col.better]} is better)`;
    tr.append(
      el("td", { title: kind }, r[col.candidate]),
      el("td", {}, r[col.baseline]),
      verdict,
      el("td", {}, metric),
      el("td", {}, points(r[col.difference]) + " pts"),
      el("td", {}, `[${points(r[col.low])}, ${points(r[col.high])}]`),
      el("td", {}, `${fmt(r[col.n])} / ${fmt(r[col.baseline_n])}`),
    );
    t.append(tr);
  }
  body.append(t);
}

function health(body, panel, data) {
  // Counters arrive as totals; the rate is the change since the previous refresh.
  const now = Date.now();
  const prev = state.samples[panel.id];
  state.samples[panel.id] = { t: now, v: data.value };
  if (data.kind === "counter") {
    if (prev && now > prev.t) stat(body, panel, Math.max(0, (data.value - prev.v) * 1000 / (now - prev.t)), "per second, now");
    else stat(body, { ...panel, unit: "short" }, data.value, "total since start");
  } else {
    stat(body, panel, data.value, data.value === null ? "no data yet" : "current");
  }
}

async function loadPanel(panel, query) {
  const node = document.getElementById("panel-" + panel.id);
  const body = node.querySelector(".body");
  try {
    const data = await getJSON(`/v1/panels/${panel.id}?${query}`);
    body.replaceChildren();
    if (panel.source === "prometheus") {
      health(body, panel, data);
      node.dataset.state = data.value === null ? "empty" : "ok";
      node.dataset.rows = "1";
      return;
    }
    const rows = data.rows;
    node.dataset.rows = String(rows.length);
    if (!rows.length) {
      node.dataset.state = "empty";
      body.append(el("div", { class: "note" }, panel.empty || "No data in this range."));
      return;
    }
    node.dataset.state = "ok";
    if (panel.viz === "stat") stat(body, panel, rows[0][0]);
    else if (panel.viz === "timeseries") timeseries(body, panel, rows);
    else if (panel.viz === "barchart") barchart(body, panel, rows);
    else if (panel.viz === "rollouts") rollouts(body, panel, rows);
    else table(body, panel, rows);
  } catch (err) {
    node.dataset.state = "error";
    body.replaceChildren(el("div", {}, String(err.message || err)));
  }
}

async function loadVariables(query) {
  const form = document.getElementById("filters");
  await Promise.all(state.spec.variables.map(async (v) => {
    const select = form[v.name];
    const current = select.value;
    try {
      const { values } = await getJSON(`/v1/variables/${v.name}?${query}`);
      const options = [el("option", { value: "" }, "All"), ...values.map((x) => el("option", { value: x }, x))];
      select.replaceChildren(...options);
      select.value = values.includes(current) ? current : "";
    } catch (err) { /* the panels show the error */ }
  }));
}

async function refresh() {
  const query = params().toString();
  const started = performance.now();
  const panels = state.spec.rows.flatMap((r) => r.panels);
  await Promise.all([loadVariables(query), ...panels.map((p) => loadPanel(p, query))]);
  state.refreshes += 1;
  document.body.dataset.refreshes = String(state.refreshes);
  document.getElementById("status").textContent =
    `updated ${new Date().toLocaleTimeString()} · ${Math.round(performance.now() - started)} ms`;
}

function schedule() {
  clearInterval(state.timer);
  const seconds = Number(document.getElementById("filters").refresh.value);
  if (seconds > 0) state.timer = setInterval(refresh, seconds * 1000);
}

function build(spec) {
  const board = document.getElementById("board");
  document.getElementById("title").textContent = spec.title.replace(/^kept — /, "");
  for (const row of spec.rows) {
    const grid = el("section", { class: "grid" });
    grid.append(el("h3", { class: "row-title" }, row.title));
    for (const p of row.panels) {
      const node = el("div", { class: "panel", id: "panel-" + p.id, "data-state": "loading",
        "data-viz": p.viz, title: p.description });
      node.style.gridColumn = `span ${p.w}`;
      node.style.height = `${p.h * 30}px`;
      node.append(el("h2", {}, p.title), el("div", { class: "body" }));
      grid.append(node);
    }
    board.append(grid);
  }
}

async function main() {
  const hashKey = new URLSearchParams(location.hash.slice(1)).get("key");
  if (hashKey) { localStorage.setItem("kept-key", hashKey); history.replaceState(null, "", "/"); }
  state.spec = await getJSON("/v1/dashboard");
  build(state.spec);
  const form = document.getElementById("filters");
  form.addEventListener("change", (e) => { if (e.target.name === "refresh") schedule(); refresh(); });
  await refresh();
  schedule();
}

main().catch((err) => { document.getElementById("status").textContent = "error: " + err.message; });
