// live.js keeps the dashboard's overview and job pages current: it polls
// /ui/live every 2 s and redraws the charts, the workers' load, the jobs,
// and on a job page its counts, task strip and failures. Every value a
// peer or submitter wrote goes into the page as text (textContent), never
// as markup.
"use strict";
(function () {
  const every = 2000;
  const root = document.getElementById("live");
  if (!root) return;
  const job = root.dataset.job || "";
  const svgNS = "http://www.w3.org/2000/svg";

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(svgNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function set(id, text) {
    const e = document.getElementById(id);
    if (e) e.textContent = text;
  }
  function fmt(x) {
    return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
  }

  // chart draws the last hour of one series as an area with its latest
  // value and the hour's peak.
  function chart(id, points, key, label) {
    const box = document.getElementById(id);
    if (!box) return;
    const w = 480, h = 120, now = points.length ? points[points.length - 1].t : Date.now();
    const from = now - 3600 * 1000;
    let peak = 0;
    for (const p of points) peak = Math.max(peak, p[key]);
    const top = peak > 0 ? peak * 1.1 : 1;
    const x = (t) => ((t - from) / 3600000) * w;
    const y = (v) => h - (v / top) * h;
    const s = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: "chart", role: "img" });
    s.appendChild(svg("rect", { x: 0, y: 0, width: w, height: h, class: "chart-bg" }));
    if (points.length > 1) {
      let d = `M ${x(points[0].t)} ${h}`;
      for (const p of points) d += ` L ${x(p.t).toFixed(1)} ${y(p[key]).toFixed(1)}`;
      d += ` L ${x(points[points.length - 1].t).toFixed(1)} ${h} Z`;
      s.appendChild(svg("path", { d: d, class: "chart-area" }));
    }
    const last = points.length ? points[points.length - 1][key] : 0;
    box.replaceChildren(s, el("div", { class: "small" }, `${label}: ${fmt(last)} now, peak ${fmt(peak)} in the last hour`));
    box.dataset.last = String(last);
    box.dataset.peak = String(peak);
  }

  function workers(list) {
    const t = document.getElementById("workers");
    if (!t) return;
    const rows = [t.rows[0]];
    for (const wk of list) {
      const tr = el("tr", { id: "worker-" + wk.id });
      tr.appendChild(el("td", { class: "mono" }, wk.id));
      tr.appendChild(el("td", {}, wk.state));
      const bar = el("span", { class: "bar", title: `${wk.busy} busy (${wk.busy_from}) of ${wk.cores} cores` });
      bar.appendChild(el("span", { class: "leased", style: `width: ${(wk.util * 100).toFixed(1)}%` }));
      const td = el("td");
      td.append(bar, " " + Math.round(wk.util * 100) + "%");
      tr.appendChild(td);
      tr.appendChild(el("td", { class: "num" }, `${wk.busy} / ${wk.cores}`));
      tr.appendChild(el("td", {}, wk.busy_from));
      tr.appendChild(el("td", { class: "num" }, String(wk.done)));
      tr.appendChild(el("td", { class: "num" }, String(wk.failed)));
      rows.push(tr);
    }
    if (list.length === 0) {
      const tr = el("tr");
      tr.appendChild(el("td", { colspan: 7 }, "No workers."));
      rows.push(tr);
    }
    t.replaceChildren(...rows);
  }

  function progress(j) {
    const bar = el("span", { class: "bar", title: `${j.done} done, ${j.leased} running, ${j.failed} failed of ${j.total}` });
    const pct = (n) => (j.total > 0 ? (100 * n) / j.total : 0).toFixed(2) + "%";
    bar.appendChild(el("span", { class: "done", style: "width: " + pct(j.done) }));
    bar.appendChild(el("span", { class: "failed", style: "width: " + pct(j.failed) }));
    bar.appendChild(el("span", { class: "leased", style: "width: " + pct(j.leased) }));
    return bar;
  }

  function jobs(list) {
    const t = document.getElementById("jobs");
    if (!t || !list) return;
    const rows = [t.rows[0]];
    for (const j of list) {
      const tr = el("tr");
      const id = el("td", { class: "mono" });
      id.appendChild(el("a", { href: "/ui/jobs/" + encodeURIComponent(j.id) }, j.id));
      tr.append(id, el("td", {}, j.name), el("td", {}, j.state));
      const p = el("td");
      p.appendChild(progress(j));
      tr.append(p, el("td", { class: "num" }, String(j.done)), el("td", { class: "num" }, String(j.failed)),
        el("td", { class: "num" }, String(j.total)), el("td", {}, j.submitted_at ? j.submitted_at.replace("T", " ").replace(/\.\d+Z$/, "Z") : "-"));
      rows.push(tr);
    }
    t.replaceChildren(...rows);
  }

  // strip draws one cell per task (or per run of tasks on a big job),
  // coloured by its worst state: failed, running, queued, done.
  function strip(cells, total) {
    const box = document.getElementById("strip");
    if (!box) return;
    const w = 960, n = cells.length, cw = n ? w / n : w, h = 24;
    const s = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: "strip", preserveAspectRatio: "none" });
    const names = ["queued", "leased", "done", "failed"];
    const states = [];
    cells.forEach((c, i) => {
      const st = c[3] ? 3 : c[1] ? 1 : c[0] ? 0 : 2;
      states.push(names[st][0]);
      s.appendChild(svg("rect", { x: (i * cw).toFixed(2), y: 0, width: Math.max(cw - (cw > 3 ? 1 : 0), 0.5).toFixed(2), height: h, class: "cell-" + names[st] }));
    });
    box.replaceChildren(s, el("div", { class: "small" }, n < total ? `each cell is about ${Math.ceil(total / n)} tasks, coloured by its worst state` : "one cell per task"));
    box.dataset.states = states.join("");
  }

  function failures(list) {
    const box = document.getElementById("failures");
    if (!box) return;
    if (!list.length) {
      box.replaceChildren(el("p", { class: "small" }, "No failed tasks."));
      return;
    }
    const out = [];
    for (const f of list) {
      const d = el("div", { class: "failure", id: "failure-" + f.index });
      const code = f.exit_code === null || f.exit_code === undefined ? "" : `, exit code ${f.exit_code}`;
      d.appendChild(el("h3", {}, `Task ${f.index}: ${f.kind || "failed"}${code}, ${f.attempts} attempt(s)${f.worker ? ", on " + f.worker : ""}`));
      if (f.error) d.appendChild(el("p", { class: "mono" }, f.error));
      d.appendChild(el("pre", { class: "stderr" }, (f.cut ? "…" : "") + (f.stderr || "(no stderr)")));
      out.push(d);
    }
    box.replaceChildren(...out);
  }

  // swap fetches this page again and puts its server-rendered parts named
  // by ids in place of the stale ones (the task table, the Raft and peer
  // tables): the server escaped them, and DOMParser runs no script.
  async function swap(ids) {
    const r = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    for (const id of ids) {
      const fresh = doc.getElementById(id), old = document.getElementById(id);
      if (fresh && old) old.replaceWith(document.importNode(fresh, true));
    }
  }

  let lastCounts = root.dataset.counts || ""; // what the server rendered
  function jobPage(j) {
    const counts = [j.state, j.queued, j.leased, j.done, j.failed].join(",");
    if (counts !== lastCounts) swap(["tasks", "spec"]);
    lastCounts = counts;
    set("job-state", j.state);
    set("counts", `${j.done} done, ${j.failed} failed, ${j.leased} running, ${j.queued} queued of ${j.total}`);
    const bar = document.getElementById("job-bar");
    if (bar) bar.replaceChildren(progress(j));
    strip(j.strip, j.total);
    failures(j.failures);
    const img = document.getElementById("job-image");
    if (img && img.dataset.state !== j.state + j.done) {
      img.dataset.state = j.state + j.done;
      img.src = "/ui/jobs/" + encodeURIComponent(j.id) + "/image.png?done=" + j.done;
    }
  }

  let ticks = 0;
  async function tick() {
    try {
      const r = await fetch("/ui/live" + (job ? "?job=" + encodeURIComponent(job) : ""), { credentials: "same-origin", cache: "no-store" });
      if (r.status === 401 || r.redirected) {
        location.href = "/ui/login";
        return;
      }
      if (!r.ok) throw new Error("HTTP " + r.status);
      const d = await r.json();
      chart("chart-rate", d.series, "rate", "results accepted per second");
      chart("chart-queue", d.series, "queued", "tasks queued");
      workers(d.workers || []);
      jobs(d.jobs);
      const t = d.totals;
      set("totals", `Tasks over all jobs: ${t[0]} queued, ${t[1]} running, ${t[2]} done, ${t[3]} failed.`);
      if (d.job) jobPage(d.job);
      else if (ticks % 5 === 4) await swap(["raft", "servers", "peers", "storage"]);
      ticks++;
      set("live-status", "live, updated " + new Date(d.now).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z"));
      root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
    } catch (e) {
      set("live-status", "live updates paused: " + e.message + "; retrying");
    }
    setTimeout(tick, every);
  }
  tick();
})();
