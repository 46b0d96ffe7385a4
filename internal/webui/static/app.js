// Eddy's live view: polls state (GET /eddy/ui/state, with the credentials
// the browser was given for /eddy/ui/) and renders it. No libraries.
"use strict";

const POLL_MS = 2000;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function fill(tbodySel, rows, cols, empty) {
  const tb = document.querySelector(tbodySel + " tbody");
  tb.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: cols }, empty))]));
}

function mb(n) { return n >= 1024 ? (n / 1024).toFixed(1) + " GB" : n + " MB"; }

function renderInvokers(invs) {
  fill("#invokers", invs.map(i => {
    const total = i.userMemory || 0, stem = i.stemCellMemory || 0;
    const used = Math.max(total - (i.freeMemory || 0) - stem, 0);
    const pct = v => total ? (100 * v / total).toFixed(1) + "%" : "0%";
    const bar = el("span", { class: "mem", title: `${used} MB in use, ${stem} MB stem cells, of ${total} MB` },
      el("span", { class: "used", style: `width:${pct(used)}` }),
      el("span", { class: "stem", style: `left:${pct(used)};width:${pct(stem)}` }));
    const cells = (i.stemCells || []).map(c => `${c.count}× ${c.kind} ${c.memory} MB`).join(", ") || "none";
    return el("tr", { class: "invoker", "data-invoker": i.id },
      el("td", {}, i.id), el("td", {}, i.status), el("td", {}, i.backend || ""),
      el("td", {}, bar, ` ${mb(used)} / ${mb(total)}`), el("td", { class: "cells" }, cells));
  }), 5, "no invoker registered");
}

function renderSchedulers(ss) {
  fill("#schedulers", ss.map(s => el("tr", { class: "scheduler" },
    el("td", {}, s.id), el("td", {}, s.addr || s.endpoint || ""), el("td", {}, s.queues ?? ""))), 3, "no scheduler registered");
}

function renderQueues(qs) {
  fill("#queues", qs.map(q => el("tr", { class: "queue", "data-action": `${q.namespace}/${q.action}` },
    el("td", { class: "action" }, `/${q.namespace}/${q.action}`),
    el("td", { class: "leader" }, q.leader || "— (electing)"),
    el("td", { class: "followers" }, (q.followers || []).join(", ") || "none"),
    el("td", { class: "containers", "data-containers": q.containers }, q.containers),
    // idle: warm and running nothing (their invokers say so); busy: the rest.
    el("td", { class: "idle" }, q.idle ?? 0),
    el("td", { class: "busy" }, Math.max(0, q.containers - (q.idle ?? 0))),
    el("td", { class: "creating" }, q.creations))), 7, "no queue: invoke an action");
}

const NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// chart draws series (arrays of numbers, one per bucket) as lines.
function chart(id, series, colors, unit) {
  const s = document.getElementById(id);
  const W = 600, H = 160, L = 40, B = 18, T = 8;
  const n = series[0].length;
  const top = Math.max(1, ...series.flat());
  const x = i => L + (W - L - 6) * (n <= 1 ? 0 : i / (n - 1));
  const y = v => T + (H - T - B) * (1 - v / top);
  const kids = [svg("line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B }), svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B })];
  for (const frac of [0, 0.5, 1]) {
    const t = svg("text", { x: 2, y: y(top * frac) + 3 }); t.textContent = fmt(top * frac) + unit; kids.push(t);
  }
  const left = svg("text", { x: L, y: H - 4 }); left.textContent = `-${Math.round(n * state.bucketMs / 60000)} min`; kids.push(left);
  const right = svg("text", { x: W - 30, y: H - 4 }); right.textContent = "now"; kids.push(right);
  series.forEach((vals, k) => {
    const pts = vals.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    kids.push(svg("polyline", { points: pts, fill: "none", stroke: colors[k], "stroke-width": 2, class: `series-${k}` }));
  });
  s.replaceChildren(...kids);
}

function fmt(v) { return v >= 100 ? Math.round(v) : v >= 10 ? v.toFixed(0) : v.toFixed(1); }

function renderActivations(acts) {
  const max = Math.max(1, ...acts.map(a => a.total));
  fill("#activations", acts.map(a => {
    const t = a.timings || {};
    const create = t.create || 0, init = t.init || 0, run = t.run || 0;
    const queued = Math.max((t.queued || 0) - create, 0);
    const seg = (cls, v) => el("span", { class: cls, style: `width:${(100 * v / max).toFixed(2)}%`, title: `${cls} ${v} ms` });
    const bar = el("div", { class: "bar", "data-total": a.total },
      seg("queued", queued), seg("create", create), seg("init", init), seg("run", run));
    return el("tr", { class: "activation", "data-id": a.id },
      el("td", {}, a.id.slice(0, 12) + "…"),
      el("td", {}, a.action, el("span", { class: "kind " + (a.startKind || "") }, a.startKind || "")),
      el("td", {}, new Date(a.start).toLocaleTimeString()),
      el("td", { class: "status-" + a.statusCode }, ["success", "application error", "developer error", "internal error"][a.statusCode] || a.statusCode),
      el("td", {}, a.total), el("td", {}, bar));
  }), 6, "no activation in the last minutes");
}

let state = { bucketMs: 10000 };

async function poll() {
  try {
    // Resolved without the page URL's user info (user:key@host), which
    // fetch refuses; the browser sends the credentials it was given.
    const r = await fetch(new URL("state", location.origin + location.pathname), { credentials: "same-origin", cache: "no-store" });
    if (!r.ok) throw new Error(`state: ${r.status}`);
    state = await r.json();
    document.getElementById("namespace").textContent = state.namespace;
    document.getElementById("window").textContent = `(last ${Math.round(state.series.length * state.bucketMs / 60000)} min, ${state.bucketMs / 1000} s buckets)`;
    renderInvokers(state.invokers);
    renderSchedulers(state.schedulers);
    renderQueues(state.queues);
    chart("rate", [state.series.map(p => p.rate)], ["#3b7dd8"], "/s");
    chart("latency", [state.series.map(p => p.p50), state.series.map(p => p.p90), state.series.map(p => p.p99)], ["#3b9c5a", "#e8833a", "#c8423b"], "");
    renderActivations(state.activations);
    document.getElementById("updated").textContent = new Date(state.now).toLocaleTimeString();
    document.getElementById("error").textContent = "";
    document.body.dataset.loaded = "true";
  } catch (e) {
    document.getElementById("error").textContent = String(e.message || e);
  }
  setTimeout(poll, POLL_MS);
}

poll();
