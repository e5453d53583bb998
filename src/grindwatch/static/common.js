// Shared helpers of the monitoring pages: authorised requests and small SVG charts.
// Everything is drawn here, so the pages need no network beyond the service itself.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

// The bearer token comes from the address fragment (#token=...), which the browser
// never sends to the server, and is kept for this tab only.
function bearerToken() {
  const match = window.location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem("grindwatch-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  return sessionStorage.getItem("grindwatch-token");
}

async function fetchJson(path) {
  const headers = { Accept: "application/json" };
  const token = bearerToken();
  if (token) {
    headers.Authorization = "Bearer " + token;
  }
  const response = await fetch(path, { headers, cache: "no-store" });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail || detail;
    } catch (error) {
      // The body was not JSON; keep the status text.
    }
    throw new Error(response.status + ": " + detail);
  }
  return response.json();
}

function svgElement(name, attributes, parent) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes || {})) {
    element.setAttribute(key, value);
  }
  if (parent) {
    parent.appendChild(element);
  }
  return element;
}

function htmlElement(name, text, parent, className) {
  const element = document.createElement(name);
  if (text !== undefined && text !== null) {
    element.textContent = text;
  }
  if (className) {
    element.className = className;
  }
  if (parent) {
    parent.appendChild(element);
  }
  return element;
}

function formatNumber(value) {
  if (value === null || value === undefined || Number.isNaN(value)) {
    return "–";
  }
  return Number(value).toPrecision(4);
}

function linearScale(domainLow, domainHigh, rangeLow, rangeHigh) {
  const span = domainHigh - domainLow || 1;
  return (value) => rangeLow + ((value - domainLow) / span) * (rangeHigh - rangeLow);
}

// A frame of axes for values up to yMax. When the positive values span more than
// LOG_SPAN (an alarm far above normal cycles), the y axis is logarithmic, so normal
// scores stay readable next to the alarm. A given fixedTop makes the axis linear
// from 0 to fixedTop. Returns the svg, the plot box and the y scale.
const LOG_SPAN = 30;

function chartFrame(container, values, yLabel, xLabel, fixedTop) {
  container.replaceChildren();
  const width = Math.max(container.clientWidth || 0, 480);
  const height = 260;
  const box = { left: 64, right: width - 16, top: 12, bottom: height - 40 };
  const svg = svgElement("svg", {
    viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
  }, container);
  const positive = values.filter((value) => value > 0);
  const high = Math.max(...positive, 1e-12);
  const low = Math.min(...positive, high);
  const logarithmic = fixedTop === undefined && high / low > LOG_SPAN;
  let y;
  let ticks;
  if (logarithmic) {
    const bottom = Math.floor(Math.log10(low));
    const top = Math.log10(high) + 0.1;
    const scale = linearScale(bottom, top, box.bottom, box.top);
    y = (value) => scale(Math.log10(Math.max(value, 10 ** bottom)));
    ticks = [];
    for (let power = bottom; power <= top; power += 1) {
      ticks.push(10 ** power);
    }
  } else {
    const top = fixedTop === undefined ? high * 1.15 : fixedTop;
    y = linearScale(0, top, box.bottom, box.top);
    ticks = [0, 1, 2, 3, 4].map((step) => (top * step) / 4);
  }
  for (const value of ticks) {
    svgElement("line", {
      x1: box.left, x2: box.right, y1: y(value), y2: y(value), class: "grid",
    }, svg);
    const tick = svgElement("text", {
      x: box.left - 6, y: y(value) + 4, "text-anchor": "end", class: "tick",
    }, svg);
    tick.textContent = formatNumber(value);
  }
  const middle = (box.top + box.bottom) / 2;
  const yTitle = svgElement("text", {
    x: 14, y: middle, class: "axis-title", "text-anchor": "middle",
    transform: `rotate(-90 14 ${middle})`,
  }, svg);
  yTitle.textContent = yLabel + (logarithmic ? " (log scale)" : "");
  const xTitle = svgElement("text", {
    x: (box.left + box.right) / 2, y: height - 6, class: "axis-title",
    "text-anchor": "middle",
  }, svg);
  xTitle.textContent = xLabel;
  return { svg, box, y };
}

// Round steps of 1, 2 or 5 times a power of ten, about `count` of them from low
// to high, so x-axis labels read as 0, 0.5, 1 and not as 0.000, 0.4981.
function roundTicks(low, high, count) {
  const span = high - low;
  if (!(span > 0)) {
    return [low];
  }
  const rough = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((factor) => factor * magnitude)
    .find((candidate) => candidate >= rough);
  const ticks = [];
  for (let value = Math.ceil(low / step) * step; value <= high + step * 1e-9;
    value += step) {
    ticks.push(Number(value.toPrecision(12)));
  }
  return ticks;
}

// Draw a labelled tick mark under the plot box for each [x position, label] pair.
function xTicks(frame, positions) {
  for (const [position, label] of positions) {
    svgElement("line", {
      x1: position, x2: position, y1: frame.box.bottom, y2: frame.box.bottom + 4,
      class: "grid",
    }, frame.svg);
    const tick = svgElement("text", {
      x: position, y: frame.box.bottom + 16, "text-anchor": "middle",
      class: "tick x-tick",
    }, frame.svg);
    tick.textContent = label;
  }
}

function thresholdLine(frame, threshold) {
  const level = frame.y(threshold);
  svgElement("line", {
    x1: frame.box.left, x2: frame.box.right, y1: level, y2: level, class: "threshold",
  }, frame.svg);
  const label = svgElement("text", {
    x: frame.box.right - 4, y: level - 4, "text-anchor": "end", class: "threshold-label",
  }, frame.svg);
  label.textContent = "threshold " + formatNumber(threshold);
}

function showNotice(text) {
  const notice = document.getElementById("notice");
  notice.textContent = text;
  notice.hidden = !text;
}

const CHANNEL_COLOURS = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#d62728",
];
