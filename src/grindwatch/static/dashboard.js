// The live monitoring page: polls /api/cycles and redraws the chart and the table.
"use strict";

const REFRESH_MS = 2000;
const SHOWN = 200;

function cycleLink(cycle) {
  return "/cycles/" + cycle.id;
}

function verdict(cycle) {
  if (cycle.status === "failed") {
    return "failed";
  }
  return cycle.flag ? "alarm" : "normal";
}

function drawChart(data) {
  const container = document.getElementById("chart");
  const scored = data.cycles.filter((cycle) => cycle.status === "scored");
  const thresholds = scored.map((cycle) => cycle.threshold ?? data.threshold);
  const values = [data.threshold, ...thresholds, ...scored.map((cycle) => cycle.score)];
  const frame = chartFrame(container, values, "recording score",
    "cycles, oldest to newest");
  const count = data.cycles.length;
  const x = linearScale(0, Math.max(count - 1, 1), frame.box.left + 8, frame.box.right - 8);
  const points = scored.map((cycle) => [x(data.cycles.indexOf(cycle)), frame.y(cycle.score)]);
  if (points.length > 1) {
    svgElement("polyline", {
      points: points.map((point) => point.join(",")).join(" "), class: "trace",
    }, frame.svg);
  }
  if (thresholds.every((value) => value === data.threshold)) {
    thresholdLine(frame, data.threshold);
  } else {
    drawThresholdSteps(frame, x, data, scored);
  }
  data.cycles.forEach((cycle, index) => {
    const kind = verdict(cycle);
    const link = svgElement("a", { href: cycleLink(cycle) }, frame.svg);
    const centreY = kind === "failed" ? frame.box.bottom - 6 : frame.y(cycle.score);
    const point = svgElement("circle", {
      cx: x(index), cy: centreY, r: kind === "alarm" ? 6 : 4,
      class: "point " + kind, "data-id": cycle.id,
    }, link);
    const title = svgElement("title", {}, point);
    title.textContent = `${cycle.path}: ${kind}` +
      (kind === "failed" ? ` (${cycle.reason})` : `, score ${formatNumber(cycle.score)}`) +
      (cycle.cycle_flag ? `; cycle check: ${cycle.cycle_reason}` : "");
  });
}

// Results stored by another model keep the threshold they were judged by, so the
// line steps where the served model changed.
function drawThresholdSteps(frame, x, data, scored) {
  const half = scored.length > 1
    ? (x(data.cycles.indexOf(scored[1])) - x(data.cycles.indexOf(scored[0]))) / 2 : 8;
  const points = [];
  for (const cycle of scored) {
    const centre = x(data.cycles.indexOf(cycle));
    const level = frame.y(cycle.threshold ?? data.threshold);
    points.push([centre - half, level], [centre + half, level]);
  }
  svgElement("polyline", {
    points: points.map((point) => point.join(",")).join(" "), class: "threshold",
  }, frame.svg);
  const label = svgElement("text", {
    x: frame.box.right - 4, y: frame.y(data.threshold) - 4, "text-anchor": "end",
    class: "threshold-label",
  }, frame.svg);
  label.textContent = "threshold " + formatNumber(data.threshold) +
    " (earlier results: the threshold they were scored with)";
}

function drawTable(data) {
  const body = document.querySelector("#cycles tbody");
  body.replaceChildren();
  for (const cycle of [...data.cycles].reverse()) {
    const kind = verdict(cycle);
    const row = htmlElement("tr", null, body, kind);
    row.dataset.id = cycle.id;
    row.addEventListener("click", () => { window.location.href = cycleLink(cycle); });
    htmlElement("td", String(cycle.id), row);
    htmlElement("td", cycle.scored_at.replace("T", " ").replace("+00:00", ""), row);
    const file = htmlElement("td", null, row);
    const anchor = htmlElement("a", cycle.path, file);
    anchor.href = cycleLink(cycle);
    htmlElement("td", formatNumber(cycle.score), row, "number");
    const verdictCell = htmlElement("td", kind === "alarm" ? "ALARM" : kind, row);
    // Only the cycle check: the window score is not above the stored threshold.
    const cycleOnly = cycle.cycle_flag && !(cycle.score > cycle.threshold);
    if (cycle.cycle_flag) {
      verdictCell.textContent += cycleOnly ? " (cycle check)" : " (windows and cycle check)";
      verdictCell.title = "cycle check: " + cycle.cycle_reason;
    }
    if (kind === "failed") {
      verdictCell.title = cycle.reason;
      verdictCell.textContent = "failed: " + cycle.reason;
    }
    htmlElement("td", cycle.status === "scored"
      ? `${cycle.flagged_windows} / ${cycle.n_windows}` : "–", row, "number");
    // Window attribution does not explain an alarm of the cycle check alone, so
    // that row names the channel of the cycle check's reason.
    const topChannel = htmlElement("td", cycleOnly
      ? (cycle.cycle_channel || "length") + " (cycle check)"
      : cycle.top_channel || "–", row);
    if (cycleOnly) {
      topChannel.title = cycle.cycle_reason;
    }
  }
}

function drawSummary(data) {
  document.getElementById("model-name").textContent = data.model;
  document.getElementById("threshold").textContent = formatNumber(data.threshold);
  document.getElementById("n-cycles").textContent = data.cycles.length;
  const alarms = data.cycles.filter((cycle) => verdict(cycle) === "alarm").length;
  document.getElementById("n-alarms").textContent = alarms;
  document.getElementById("n-failed").textContent =
    data.cycles.filter((cycle) => cycle.status === "failed").length;
  showNotice(data.results_store ? (data.notice || "") :
    "This service has no results store: start it with --watch FOLDER or --results FILE.");
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const data = await fetchJson("/api/cycles?limit=" + SHOWN);
    drawSummary(data);
    drawChart(data);
    drawTable(data);
    status.textContent = "live, updated " + new Date().toLocaleTimeString();
    status.className = "status live";
  } catch (error) {
    status.textContent = "not updated: " + error.message;
    status.className = "status stale";
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
