/* The async-processor dashboard: polls GET /stats every second, listens to GET /events
 * (server-sent events) and draws what it learns. Plain JavaScript, no build step.
 * Every text from the server is set with textContent, never parsed as HTML. */
(function () {
  "use strict";

  var WINDOW_SECONDS = 300; // the charts keep the last five minutes
  var POLL_MS = 1000;
  var HEALTH_MS = 5000;
  var PRIORITIES = ["CRITICAL", "HIGH", "NORMAL", "LOW", "BATCH"];
  var TERMINAL = { completed: true, failed: true, timeout: true, cancelled: true };
  var MAX_RECENT = 50;

  // -- the session: GET /?access_token= set an HttpOnly session cookie; drop the token -------
  (function dropToken() {
    var url = new URL(window.location.href);
    if (url.searchParams.has("access_token")) {
      url.searchParams.delete("access_token"); // keep it out of the address bar and history
      window.history.replaceState(null, "", url.pathname + url.search + url.hash);
    }
  })();

  function api(path, options) {
    var init = Object.assign({ headers: {}, cache: "no-store", credentials: "same-origin" }, options || {});
    return fetch(path, init).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        if (!response.ok) {
          var error = new Error((body && body.detail) || ("HTTP " + response.status));
          error.status = response.status;
          throw error;
        }
        return body;
      });
    });
  }

  // -- small helpers -------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }

  function el(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function statusBadge(status) {
    return el("span", status, { "class": "status", "data-status": status });
  }

  function fmtNumber(n, digits) {
    if (n === null || n === undefined || !isFinite(n)) return "-";
    return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits || 0 });
  }

  function fmtMs(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "-";
    var ms = seconds * 1000;
    if (ms < 1) return ms.toFixed(2) + " ms";
    if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + " ms";
    return (ms / 1000).toFixed(2) + " s";
  }

  function fmtDuration(seconds) {
    if (!isFinite(seconds)) return "-";
    var s = Math.floor(seconds);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + (s % 60) + "s";
    return s + "s";
  }

  function fmtAgo(unixSeconds) {
    if (!unixSeconds) return "-";
    var ago = Math.max(0, Date.now() / 1000 - unixSeconds);
    return ago < 1 ? "now" : fmtDuration(ago) + " ago";
  }

  function shortId(id) { return id.length > 14 ? id.slice(0, 8) + "\u2026" + id.slice(-4) : id; }

  function priorityName(value) {
    return typeof value === "number" ? (PRIORITIES[value - 1] || String(value)) : String(value);
  }

  function replaceRows(tbody, rows) {
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    rows.forEach(function (row) { tbody.appendChild(row); });
  }

  var bannerReason = null;
  function showBanner(reason, text) {
    bannerReason = reason;
    $("banner").textContent = text;
    $("banner").hidden = false;
  }
  function clearBanner(reason) {
    if (bannerReason === reason) { $("banner").hidden = true; bannerReason = null; }
  }

  function explain(error) {
    if (error.status === 401) {
      return "The server refused the token (401). Open this page as /?access_token=<admin token>.";
    }
    if (error.status === 403) return "This dashboard needs an admin token (403): " + error.message;
    if (error.status === 429) return "Rate limited (429); the dashboard keeps retrying.";
    if (error.status) return "The server answered " + error.status + ": " + error.message;
    return "Cannot reach the server; retrying every second.";
  }

  // -- the charts: rolling windows, one point per second ----------------------------------
  var series = {
    throughput: [[], [], []], // time, ended per second, 1-minute average
    latency: [[], [], [], []], // time, p50, p95, max (ms) of tasks that ended in that second
    queue: [[], [], []] // time, queued, running
  };
  var charts = {};
  var endedThisSecond = []; // execution times (s) from the event stream since the last tick

  function makeChart(id, labels, colors) {
    var container = $(id);
    var opts = {
      width: Math.max(280, container.clientWidth),
      height: 200,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } },
      axes: [{}, { size: 50 }],
      series: [{}].concat(labels.map(function (label, i) {
        return { label: label, stroke: colors[i], width: 2, spanGaps: false, points: { show: false } };
      }))
    };
    var empty = [[]].concat(labels.map(function () { return []; }));
    charts[id] = new window.uPlot(opts, empty, container);
  }

  function pushPoint(name, values) {
    var data = series[name];
    for (var i = 0; i < data.length; i++) data[i].push(values[i]);
    var cutoff = values[0] - WINDOW_SECONDS;
    while (data[0].length && data[0][0] < cutoff) {
      for (var j = 0; j < data.length; j++) data[j].shift();
    }
  }

  function drawCharts() {
    Object.keys(series).forEach(function (name) {
      var chart = charts["chart-" + name];
      if (!chart) return;
      chart.setData(series[name]);
      chart.root.parentNode.setAttribute("data-points", String(series[name][0].length));
    });
  }

  function resizeCharts() {
    Object.keys(charts).forEach(function (id) {
      charts[id].setSize({ width: Math.max(280, $(id).clientWidth), height: 200 });
    });
  }

  function percentile(sorted, q) {
    if (!sorted.length) return null;
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  }

  var previous = null; // {t, processed}

  function recordSample(stats, now) {
    var processed = stats.tasks_processed || 0;
    var rate = null;
    if (previous && now > previous.t) {
      rate = Math.max(0, (processed - previous.processed) / (now - previous.t));
    }
    previous = { t: now, processed: processed };
    pushPoint("throughput", [now, rate, stats.current_throughput]);

    var times = endedThisSecond.map(function (s) { return s * 1000; }).sort(function (a, b) { return a - b; });
    endedThisSecond = [];
    pushPoint("latency", [now, percentile(times, 0.5), percentile(times, 0.95),
      times.length ? times[times.length - 1] : null]);
    pushPoint("queue", [now, stats.queue_size, stats.running_tasks]);
    drawCharts();
  }

  // -- panels ------------------------------------------------------------------------------
  function renderKpis(stats) {
    $("kpi-processed").textContent = fmtNumber(stats.tasks_processed);
    $("kpi-success").textContent = stats.tasks_processed ? fmtNumber(stats.success_rate, 1) + "%" : "-";
    $("kpi-throughput").textContent = fmtNumber(stats.current_throughput, 1) + "/s";
    $("kpi-running").textContent = fmtNumber(stats.running_tasks);
    $("kpi-queued").textContent = fmtNumber(stats.queue_size);
    $("kpi-retries").textContent = fmtNumber(stats.retries);
    $("kpi-memory").textContent = fmtNumber(stats.peak_memory_usage_mb, 1) + " MB";
    var lag = stats.event_loop_lag || {};
    $("kpi-lag").textContent = fmtMs(lag.p95);
    $("kpi-uptime").textContent = fmtDuration(stats.uptime_seconds);
  }

  function renderQueue(stats) {
    var queued = stats.queued_by_priority || {};
    var max = 1;
    PRIORITIES.forEach(function (p) { max = Math.max(max, queued[p] || 0); });
    var box = $("queue-bars");
    while (box.firstChild) box.removeChild(box.firstChild);
    PRIORITIES.forEach(function (p) {
      var count = queued[p] || 0;
      var row = el("div", null, { "class": "bar", "data-priority": p });
      row.appendChild(el("span", p));
      var track = el("div", null, { "class": "track" });
      var fill = el("div", null, { "class": "fill" });
      fill.style.width = (100 * count / max) + "%";
      track.appendChild(fill);
      row.appendChild(track);
      row.appendChild(el("span", fmtNumber(count), { "class": "count" }));
      box.appendChild(row);
    });
  }

  function renderWorkers(stats) {
    var workers = stats.worker_stats || {};
    var box = $("workers");
    var counts = {};
    while (box.firstChild) box.removeChild(box.firstChild);
    Object.keys(workers).sort().forEach(function (name) {
      var w = workers[name];
      var status = String(w.status || "unknown");
      counts[status] = (counts[status] || 0) + 1;
      var chip = el("div", null, { "class": "worker", "data-status": status, "data-worker": name });
      chip.title = (w.context || "") + " worker, " + fmtNumber(w.tasks_processed) + " tasks, " +
        fmtMs(w.total_execution_time) + " busy" + (w.current_task ? ", running " + w.current_task : "");
      chip.appendChild(el("div", name, { "class": "name" }));
      chip.appendChild(el("div", status + " \u00b7 " + fmtNumber(w.tasks_processed), { "class": "muted" }));
      box.appendChild(chip);
    });
    var executors = stats.executors || {};
    var abandoned = executors.thread ? executors.thread.abandoned : 0;
    var summary = Object.keys(counts).sort().map(function (s) { return counts[s] + " " + s; }).join(", ");
    if (abandoned) summary += ", " + abandoned + " abandoned threads";
    $("workers-summary").textContent = summary ? "(" + summary + ")" : "";
  }

  function renderTypes(stats) {
    var types = stats.by_type || {};
    var rows = Object.keys(types).sort().map(function (name) {
      var t = types[name], c = t.counts || {};
      var ended = (c.completed || 0) + (c.failed || 0) + (c.timeout || 0) + (c.cancelled || 0);
      var tr = el("tr", null, { "data-type": name });
      tr.appendChild(el("td", name));
      ["completed", "failed", "timeout", "cancelled"].forEach(function (k) {
        tr.appendChild(el("td", fmtNumber(c[k] || 0), { "class": "num" }));
      });
      tr.appendChild(el("td", ended ? fmtNumber(100 * (c.completed || 0) / ended, 1) + "%" : "-", { "class": "num" }));
      var exec = t.execution_time || {}, wait = t.queue_wait || {};
      tr.appendChild(el("td", fmtMs(exec.p50), { "class": "num" }));
      tr.appendChild(el("td", fmtMs(exec.p95), { "class": "num" }));
      tr.appendChild(el("td", fmtMs(exec.p99), { "class": "num" }));
      tr.appendChild(el("td", fmtMs(wait.p95), { "class": "num" }));
      tr.appendChild(el("td", fmtNumber(t.retries || 0), { "class": "num" }));
      return tr;
    });
    replaceRows($("types").tBodies[0], rows);
  }

  function renderFailures(stats) {
    var failures = stats.recent_failures || [];
    var rows = failures.map(function (f) {
      var tr = el("tr", null, { "data-task": f.task_id });
      tr.appendChild(el("td", shortId(f.task_id), { "class": "id", title: f.task_id }));
      tr.appendChild(el("td", f.task_type));
      var td = el("td");
      td.appendChild(statusBadge(f.status));
      tr.appendChild(td);
      tr.appendChild(el("td", f.error || "", { "class": "error" }));
      tr.appendChild(el("td", fmtAgo(f.time)));
      return tr;
    });
    replaceRows($("failures").tBodies[0], rows);
    $("no-failures").hidden = rows.length > 0;
  }

  // -- recent tasks: the latest event per task, from /stats and the event stream ----------
  var recent = new Map();

  function noteEvent(event) {
    var known = recent.get(event.task_id);
    if (known && known.time > event.time) return;
    if (known && known.time === event.time && TERMINAL[known.status]) return;
    recent.set(event.task_id, event);
    while (recent.size > MAX_RECENT) {
      var oldest = null;
      recent.forEach(function (e, id) { if (oldest === null || e.time < recent.get(oldest).time) oldest = id; });
      recent.delete(oldest);
    }
  }

  function renderRecent() {
    var events = Array.from(recent.values()).sort(function (a, b) { return b.time - a.time; });
    var rows = events.map(function (e) {
      var tr = el("tr", null, { "data-task": e.task_id, "data-status": e.status });
      if (e.task_id === selected) tr.className = "selected";
      tr.appendChild(el("td", shortId(e.task_id), { "class": "id", title: e.task_id }));
      tr.appendChild(el("td", e.task_type));
      var td = el("td");
      td.appendChild(statusBadge(e.status));
      tr.appendChild(td);
      tr.appendChild(el("td", priorityName(e.priority)));
      tr.appendChild(el("td", e.execution_time !== undefined ? fmtMs(e.execution_time) : "", { "class": "num" }));
      tr.appendChild(el("td", fmtAgo(e.time)));
      tr.addEventListener("click", function () { select(e.task_id); });
      return tr;
    });
    replaceRows($("recent").tBodies[0], rows);
  }

  // -- the dependency graph of the selected task, drawn as SVG ----------------------------
  var selected = null;
  var graphIds = new Set();
  var graphOpen = false; // some task of the graph has not ended yet
  var graphTimer = null;

  function select(taskId) {
    selected = taskId;
    $("graph-id").value = taskId;
    renderRecent();
    loadGraph();
  }

  function scheduleGraph() {
    if (graphTimer === null) graphTimer = window.setTimeout(function () { graphTimer = null; loadGraph(); }, 300);
  }

  function loadGraph() {
    if (!selected) return;
    var id = selected;
    var path = "tasks/" + encodeURIComponent(id);
    Promise.all([api(path + "/graph"), api(path)]).then(function (answers) {
      if (id !== selected) return;
      drawGraph(answers[0], id);
      var detail = $("task-detail");
      detail.textContent = JSON.stringify(answers[1], null, 2).slice(0, 4000);
      detail.hidden = false;
    }).catch(function (error) {
      if (id !== selected) return;
      graphIds = new Set();
      $("graph").textContent = "";
      $("task-detail").hidden = true;
      $("graph-message").textContent = error.status === 404
        ? "No task " + id + " (never submitted, or its result has expired)."
        : explain(error);
    });
  }

  function drawGraph(graph, focus) {
    var nodes = graph.nodes || [], edges = graph.edges || [];
    graphIds = new Set(nodes.map(function (n) { return n.id; }));
    graphOpen = nodes.some(function (n) { return !TERMINAL[n.status]; });
    var parents = {};
    nodes.forEach(function (n) { parents[n.id] = []; });
    edges.forEach(function (e) { if (parents[e[1]]) parents[e[1]].push(e[0]); });
    // layer = longest chain of dependencies below a node (dependencies to the left)
    var layer = {};
    function depth(id, seen) {
      if (layer[id] !== undefined) return layer[id];
      if (seen[id]) return 0; // a cycle cannot happen; stay safe anyway
      seen[id] = true;
      var d = 0;
      parents[id].forEach(function (p) { if (parents[p]) d = Math.max(d, depth(p, seen) + 1); });
      layer[id] = d;
      return d;
    }
    nodes.forEach(function (n) { depth(n.id, {}); });
    var columns = [];
    nodes.slice().sort(function (a, b) { return a.id < b.id ? -1 : 1; }).forEach(function (n) {
      (columns[layer[n.id]] = columns[layer[n.id]] || []).push(n);
    });
    var W = 180, H = 44, GX = 70, GY = 16, PAD = 10;
    var pos = {};
    var rows = 0;
    columns.forEach(function (col, x) {
      rows = Math.max(rows, col.length);
      col.forEach(function (n, y) { pos[n.id] = { x: PAD + x * (W + GX), y: PAD + y * (H + GY) }; });
    });
    var width = PAD * 2 + columns.length * W + Math.max(0, columns.length - 1) * GX;
    var height = PAD * 2 + rows * H + Math.max(0, rows - 1) * GY;
    var root = svg("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height,
      role: "img", "aria-label": "dependency graph of " + focus });
    var defs = svg("defs");
    var marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
      markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
    marker.appendChild(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", "class": "arrowhead", fill: "#8a94a6" }));
    defs.appendChild(marker);
    root.appendChild(defs);
    edges.forEach(function (e) {
      var a = pos[e[0]], b = pos[e[1]];
      if (!a || !b) return;
      var x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mid = (x1 + x2) / 2;
      root.appendChild(svg("path", { "class": "edge", "data-from": e[0], "data-to": e[1],
        d: "M" + x1 + " " + y1 + " C" + mid + " " + y1 + " " + mid + " " + y2 + " " + x2 + " " + y2,
        "marker-end": "url(#arrow)" }));
    });
    nodes.forEach(function (n) {
      var p = pos[n.id];
      var g = svg("g", { "class": "node" + (n.id === focus ? " selected" : ""), "data-id": n.id,
        "data-status": n.status, transform: "translate(" + p.x + " " + p.y + ")" });
      g.appendChild(svg("rect", { width: W, height: H, rx: 6 }));
      var title = svg("title");
      title.textContent = n.id + " \u2014 " + n.task_type + ", " + n.status + ", " + priorityName(n.priority);
      g.appendChild(title);
      var label = svg("text", { x: 8, y: 18 });
      label.textContent = (n.task_type || "?") + " \u00b7 " + n.status;
      g.appendChild(label);
      var sub = svg("text", { x: 8, y: 35, "class": "sub" });
      sub.textContent = shortId(n.id) + " \u00b7 " + priorityName(n.priority);
      g.appendChild(sub);
      g.addEventListener("click", function () { select(n.id); });
      root.appendChild(g);
    });
    var box = $("graph");
    box.textContent = "";
    box.appendChild(root);
    $("graph-message").textContent = nodes.length + " task(s), " + edges.length +
      " dependency edge(s); dependencies on the left, dependents on the right.";
  }

  // -- the live sources ---------------------------------------------------------------------
  function pollStats() {
    api("stats").then(function (stats) {
      clearBanner("stats");
      var now = Date.now() / 1000;
      (stats.recent_tasks || []).forEach(noteEvent);
      renderKpis(stats);
      renderQueue(stats);
      renderWorkers(stats);
      renderTypes(stats);
      renderFailures(stats);
      renderRecent();
      recordSample(stats, now);
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    }).catch(function (error) {
      showBanner("stats", explain(error));
    }).then(function () {
      window.setTimeout(pollStats, POLL_MS);
    });
  }

  function pollHealth() {
    fetch("health", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (h) {
      var badge = $("health");
      badge.setAttribute("data-status", h.status);
      badge.textContent = "health: " + h.status;
      badge.title = h.reason || "GET /health";
    }).catch(function () {
      $("health").setAttribute("data-status", "down");
      $("health").textContent = "health: unreachable";
    }).then(function () {
      window.setTimeout(pollHealth, HEALTH_MS);
    });
  }

  var stream = null;

  function connectEvents() {
    stream = new EventSource("events"); // the session cookie authenticates it
    var badge = $("stream");
    stream.onopen = function () {
      badge.setAttribute("data-status", "live");
      badge.textContent = "events: live";
    };
    stream.onerror = function () {
      badge.setAttribute("data-status", stream.readyState === EventSource.CLOSED ? "down" : "connecting");
      badge.textContent = stream.readyState === EventSource.CLOSED ? "events: closed" : "events: reconnecting";
      if (stream.readyState === EventSource.CLOSED) window.setTimeout(connectEvents, 3000);
    };
    stream.addEventListener("task", function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      noteEvent(event);
      if (TERMINAL[event.status] && typeof event.execution_time === "number") {
        endedThisSecond.push(event.execution_time);
      }
      if (graphIds.has(event.task_id)) scheduleGraph();
      scheduleRecent();
    });
    ["dropped", "shutdown"].forEach(function (kind) {
      stream.addEventListener(kind, function () {
        stream.close();
        badge.setAttribute("data-status", "connecting");
        badge.textContent = "events: " + kind + ", reconnecting";
        window.setTimeout(connectEvents, 3000);
      });
    });
  }

  var recentTimer = null;
  function scheduleRecent() {
    if (recentTimer === null) recentTimer = window.setTimeout(function () { recentTimer = null; renderRecent(); }, 200);
  }

  function start() {
    makeChart("chart-throughput", ["ended/s", "1-min average"], ["#2f7de1", "#1f9d55"]);
    makeChart("chart-latency", ["p50", "p95", "max"], ["#1f9d55", "#d9822b", "#d64545"]);
    makeChart("chart-queue", ["queued", "running"], ["#7a5af5", "#2f7de1"]);
    var resizeTimer = null;
    window.addEventListener("resize", function () {
      window.clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(resizeCharts, 150);
    });
    $("graph-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var id = $("graph-id").value.trim();
      if (id) select(id);
    });
    window.setInterval(function () {
      if (selected && graphOpen) scheduleGraph(); // catch up if the stream missed a change
    }, 5000);
    pollStats();
    pollHealth();
    connectEvents();
  }

  start();
})();
