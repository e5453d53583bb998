// The explanation of one cycle: window scores over the cycle and channel shares.
"use strict";

function resultId() {
  return window.location.pathname.split("/").filter(Boolean).pop();
}

function windowPosition(item) {
  return item.start_s !== null ? item.start_s : item.start_sample;
}

function drawFacts(cycle) {
  const facts = document.getElementById("facts");
  facts.replaceChildren();
  // Window attribution does not explain an alarm of the cycle check alone, so
  // such a cycle names the cycle check's channel, as the monitoring page's list does.
  const cycleOnly = cycle.cycle_flag && !(cycle.score > cycle.threshold);
  const topChannel = cycleOnly
    ? (cycle.cycle_channel || "length") + " (cycle check)"
    : cycle.top_channel || "–";
  const items = [
    ["file", cycle.path],
    ["scored at (UTC)", cycle.scored_at.replace("T", " ").replace("+00:00", "")],
    ["recording score", formatNumber(cycle.score)],
    ["threshold", formatNumber(cycle.threshold)],
    ["flagged windows", `${cycle.flagged_windows} / ${cycle.n_windows}`],
    ["largest window score", formatNumber(cycle.max_window_score)],
    ["top channel", topChannel],
  ];
  if (cycle.current_path && cycle.current_path !== cycle.path) {
    items.splice(1, 0, ["moved to", cycle.current_path]);
  }
  if (cycle.cycle_score !== null && cycle.cycle_score !== undefined) {
    const limit = cycle.cycle_threshold !== null && cycle.cycle_threshold !== undefined
      ? ` (threshold ${formatNumber(cycle.cycle_threshold)})` : "";
    items.push(["cycle check", (cycle.cycle_flag ? "flags it" : "passes") +
      `, cycle score ${formatNumber(cycle.cycle_score)}${limit}; largest ` +
      "departure: " + cycle.cycle_reason]);
  }
  for (const [label, value] of items) {
    const item = htmlElement("div", null, facts);
    htmlElement("span", label, item, "label");
    item.appendChild(document.createTextNode(" " + value));
  }
}

function drawWindowScores(cycle) {
  const windows = cycle.windows;
  const values = [cycle.threshold, ...windows.map((item) => item.score)];
  const hasTime = windows.length && windows[0].start_s !== null;
  const frame = chartFrame(document.getElementById("window-chart"), values,
    "window score", hasTime ? "window start (s)" : "window start (sample)");
  const first = windowPosition(windows[0]);
  const last = windowPosition(windows[windows.length - 1]);
  const x = linearScale(first, last, frame.box.left + 8, frame.box.right - 8);
  xTicks(frame, roundTicks(first, last, 6).map((value) => [x(value), String(value)]));
  svgElement("polyline", {
    points: windows.map((item) => `${x(windowPosition(item))},${frame.y(item.score)}`)
      .join(" "),
    class: "trace",
  }, frame.svg);
  thresholdLine(frame, cycle.threshold);
  for (const item of windows) {
    const point = svgElement("circle", {
      cx: x(windowPosition(item)), cy: frame.y(item.score), r: item.flag ? 5 : 3,
      class: "point " + (item.flag ? "alarm" : "normal"),
    }, frame.svg);
    svgElement("title", {}, point).textContent =
      `window ${item.window} at ${formatNumber(windowPosition(item))}: ` +
      formatNumber(item.score);
  }
}

// Say how the served model's threshold was set, and how a recording's score comes
// from its window scores. A cycle scored by an earlier model keeps its own
// threshold, which this text does not describe, so the note states that.
function drawThresholdNote(cycle, model) {
  const note = document.getElementById("threshold-note");
  const [method, quantile] = model.aggregate.split(":");
  const aggregate = method === "quantile" ? `the ${quantile} quantile` : `the ${method}`;
  let text = model.threshold_description + ` The recording score is ${aggregate} ` +
    "of its window scores, and the cycle is flagged when it exceeds the threshold" +
    (model.cycle_threshold === null ? "." : " or when the cycle check flags it.");
  if (cycle.threshold !== model.threshold) {
    text = `This cycle was scored with threshold ${formatNumber(cycle.threshold)}, ` +
      "set by an earlier model; the served model's threshold is described here. " +
      text;
  }
  note.textContent = text;
}

function drawChannelBars(cycle) {
  const container = document.getElementById("channel-bars");
  container.replaceChildren();
  const shares = Object.entries(cycle.channel_shares || {})
    .sort((left, right) => right[1] - left[1]);
  const channels = Object.keys(cycle.channel_shares || {});
  for (const [channel, share] of shares) {
    const row = htmlElement("div", null, container, "bar-row");
    htmlElement("span", channel, row, "bar-label");
    const track = htmlElement("span", null, row, "bar-track");
    const bar = htmlElement("span", null, track, "bar");
    bar.style.width = (100 * share).toFixed(1) + "%";
    bar.style.background = CHANNEL_COLOURS[channels.indexOf(channel) % CHANNEL_COLOURS.length];
    htmlElement("span", (100 * share).toFixed(1) + " %", row, "number");
  }
}

function drawShareChart(cycle) {
  const windows = cycle.windows.filter((item) => item.channel_shares);
  const container = document.getElementById("share-chart");
  if (!windows.length) {
    container.textContent = "No channel shares were stored for this cycle.";
    return;
  }
  const channels = Object.keys(windows[0].channel_shares);
  const hasTime = windows[0].start_s !== null;
  const frame = chartFrame(container, [1], "share",
    hasTime ? "window start (s)" : "window start (sample)", 1);
  const step = (frame.box.right - frame.box.left) / windows.length;
  // Label at most about 8 bars, each by its window's start, below its middle.
  const labelEvery = Math.ceil(windows.length / 8);
  xTicks(frame, windows
    .filter((item, index) => index % labelEvery === 0)
    .map((item) => [
      frame.box.left + (windows.indexOf(item) + 0.5) * step,
      String(Number(windowPosition(item).toPrecision(6))),
    ]));
  windows.forEach((item, index) => {
    let base = 0;
    channels.forEach((channel, position) => {
      const share = item.channel_shares[channel];
      const rect = svgElement("rect", {
        x: frame.box.left + index * step, width: Math.max(step - 1, 1),
        y: frame.y(base + share), height: frame.y(base) - frame.y(base + share),
        fill: CHANNEL_COLOURS[position % CHANNEL_COLOURS.length],
        class: item.flag ? "flagged" : "",
      }, frame.svg);
      svgElement("title", {}, rect).textContent =
        `window ${item.window}: ${channel} ${(100 * share).toFixed(1)} %`;
      base += share;
    });
  });
  const legend = document.getElementById("share-legend");
  legend.replaceChildren();
  channels.forEach((channel, position) => {
    const swatch = htmlElement("span", null, legend, "swatch");
    swatch.style.background = CHANNEL_COLOURS[position % CHANNEL_COLOURS.length];
    legend.appendChild(document.createTextNode(" " + channel + " "));
  });
}

async function load() {
  try {
    const cycle = await fetchJson("/api/cycles/" + resultId());
    document.getElementById("title").textContent = cycle.path;
    document.title = "grindwatch: " + cycle.path;
    const verdict = document.getElementById("verdict");
    if (cycle.status === "failed") {
      verdict.textContent = "failed";
      verdict.className = "status stale";
      showNotice("This file could not be scored: " + cycle.reason);
      return;
    }
    verdict.textContent = cycle.flag ? "ALARM" : "normal";
    verdict.className = "status " + (cycle.flag ? "alarm" : "live");
    drawFacts(cycle);
    drawWindowScores(cycle);
    drawThresholdNote(cycle, await fetchJson("/model"));
    drawChannelBars(cycle);
    drawShareChart(cycle);
  } catch (error) {
    showNotice("Could not load this cycle: " + error.message);
  }
}

load();
