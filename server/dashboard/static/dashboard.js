// The live dashboard: reads the server-sent figures feed (fetch, so that the bearer token can be sent)
// and updates the tiles and the Chart.js charts with every event.
"use strict";

const HISTORY_POINTS = 240; // time-series length: one minute at the default 250 ms
const OUTCOME_COLORS = { APPROVE: "#2e7d32", REVIEW: "#f9a825", DECLINE: "#c62828" };
const PALETTE = ["#1565c0", "#6a1b9a", "#00838f", "#ef6c00", "#4e342e", "#ad1457", "#558b2f", "#37474f"];

Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;

function lineChart(id) {
  return new Chart(document.getElementById(id), {
    type: "line",
    data: { labels: [], datasets: [] },
    options: { elements: { point: { radius: 0 } }, scales: { y: { beginAtZero: true } } },
  });
}

function barChart(id, options = {}) {
  return new Chart(document.getElementById(id), {
    type: "bar",
    data: { labels: [], datasets: [] },
    options: { scales: { y: { beginAtZero: true } }, ...options },
  });
}

const charts = {
  outcomes: lineChart("chart-outcomes"),
  methods: lineChart("chart-methods"),
  stages: barChart("chart-stages"),
  codes: barChart("chart-codes", { plugins: { legend: { display: false } } }),
  // Logarithmic: most scores sit in the lowest bins, the few high ones are what drift shows first.
  scores: barChart("chart-scores", { scales: { y: { type: "logarithmic", min: 0.0001, max: 1 } } }),
  rules: barChart("chart-rules", { indexAxis: "y", plugins: { legend: { display: false } } }),
  shadowRules: barChart("chart-shadow-rules", { indexAxis: "y", plugins: { legend: { display: false } } }),
};

// Appends one point per series to a time-series chart, keeping HISTORY_POINTS.
function pushSeries(chart, label, values, colors) {
  chart.data.labels.push(label);
  for (const [name, value] of Object.entries(values)) {
    let dataset = chart.data.datasets.find((d) => d.label === name);
    if (!dataset) {
      const color = colors[name] || PALETTE[chart.data.datasets.length % PALETTE.length];
      dataset = { label: name, data: new Array(chart.data.labels.length - 1).fill(0), borderColor: color, backgroundColor: color };
      chart.data.datasets.push(dataset);
    }
  }
  for (const dataset of chart.data.datasets) dataset.data.push(values[dataset.label] || 0);
  if (chart.data.labels.length > HISTORY_POINTS) {
    chart.data.labels.shift();
    for (const dataset of chart.data.datasets) dataset.data.shift();
  }
  chart.update();
}

function setBars(chart, labels, datasets) {
  chart.data.labels = labels;
  chart.data.datasets = datasets;
  chart.update();
}

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function health(probe) {
  if (!probe) return "n/a";
  return probe.up ? "up · " + formatNumber(probe.ms, 2) + " ms" : "DOWN · " + probe.error;
}

function sumValues(object) {
  return Object.values(object || {}).reduce((a, b) => a + b, 0);
}

function render(f) {
  const clock = new Date(f.time * 1000).toLocaleTimeString("en-GB");
  text("tps", formatNumber(f.transactions_per_s));
  text("rate-window", formatNumber(f.rate_window_s, 1));
  text("decisions-total", formatNumber(f.decisions_total, 0));
  const commit = f.ledger_commit;
  text("ledger-commit", commit && commit.count ? formatMs(commit.p50) + " / " + formatMs(commit.p99) : "n/a");
  text("spool", formatNumber(f.spool.spooling_workers, 0) + " · " + formatNumber(f.spool.bytes, 0) + " B");
  text("degraded", formatNumber(sumValues(f.degraded_per_s)));
  const causes = Object.entries(f.degraded_per_s).filter(([, rate]) => rate > 0);
  text("degraded-causes", causes.length ? causes.map(([c, r]) => c + " " + formatNumber(r)).join(", ") : "without account state");
  text("redis", health(f.health.redis));
  text("postgres", health(f.health.postgres));
  text("outbox-lag", f.outbox_lag_s === null ? "n/a" : formatNumber(f.outbox_lag_s, 2) + " s");
  text("in-flight", formatNumber(f.in_flight, 0) + " · " + formatNumber(f.shed_per_s));

  const s = f.scores;
  text("drift", s.psi === null ? "n/a" : formatNumber(s.psi, 3) + " · " + s.drift);
  text("drift-note", s.training === null ? "model " + s.model_version + " has no training distribution"
    : formatNumber(s.live_count, 0) + " scores in " + formatNumber(s.window_s, 0) + " s vs " + s.training_rows + " rows");
  text("scores-caption", "Model score distribution (" + s.model_version + "): last " + formatNumber(s.window_s, 0) + " s vs training");

  pushSeries(charts.outcomes, clock, f.decisions_per_s, OUTCOME_COLORS);
  const methods = {};
  for (const [method, codes] of Object.entries(f.calls_per_s)) methods[method.split("/").pop()] = sumValues(codes);
  pushSeries(charts.methods, clock, methods, {});

  const stageNames = Object.keys(f.stages).sort();
  const ms = (q) => stageNames.map((name) => (f.stages[name][q] === null ? 0 : f.stages[name][q] * 1000));
  setBars(charts.stages, stageNames, [
    { label: "p50", data: ms("p50"), backgroundColor: "#1565c0" },
    { label: "p99", data: ms("p99"), backgroundColor: "#ef6c00" },
  ]);
  const codes = Object.keys(f.codes_per_s).sort();
  setBars(charts.codes, codes, [{ label: "calls/s", data: codes.map((c) => f.codes_per_s[c]), backgroundColor: codes.map((c) => (c === "OK" ? "#2e7d32" : "#c62828")) }]);

  const bins = s.bins.map((upper, i) => "≤ " + upper);
  const scoreSets = [{ label: "live", data: s.live, backgroundColor: "#1565c0" }];
  if (s.training !== null) scoreSets.push({ label: "training", data: s.training, backgroundColor: "#9e9e9e" });
  setBars(charts.scores, bins, scoreSets);

  for (const [chart, mode, color] of [[charts.rules, "active", "#6a1b9a"], [charts.shadowRules, "shadow", "#00838f"]]) {
    const hits = f.rules[mode] || {};
    const names = Object.keys(hits).sort();
    setBars(chart, names, [{ label: "hits/s", data: names.map((n) => hits[n]), backgroundColor: color }]);
  }

  const rows = [];
  for (const [method, byCode] of Object.entries(f.calls_per_s).sort()) {
    for (const [code, rate] of Object.entries(byCode).sort()) {
      const latency = f.call_latency[method];
      rows.push([method, code, formatNumber(rate), latency ? formatMs(latency.p99) : "n/a"]);
    }
  }
  const body = document.querySelector("#calls-table tbody");
  body.replaceChildren(...rows.map((cells) => {
    const row = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      td.textContent = cell;
      row.append(td);
    }
    return row;
  }));
  const status = document.getElementById("status");
  status.textContent = "live · " + clock;
  status.className = "pill live";
}

// Reads "event: figures / data: {...}" blocks from the feed until it ends, then reconnects.
async function follow() {
  const status = document.getElementById("status");
  try {
    const response = await apiFetch("api/feed", follow);
    if (response === null) {
      status.textContent = "token needed";
      return;
    }
    if (!response.ok) throw new Error("feed answered " + response.status);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)).join("\n");
        if (data) render(JSON.parse(data));
      }
    }
  } catch (error) {
    status.textContent = "disconnected: " + error.message;
  }
  status.className = "pill stale";
  setTimeout(follow, 1000);
}

follow();
