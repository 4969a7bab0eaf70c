// The upload page: sends images to /api/predict and /api/explain and shows
// the class probabilities, the heatmap (with an opacity slider), the region
// that drives the prediction, and a CSV of the batch. No external resources.
"use strict";

const input = document.getElementById("file-input");
const dropZone = document.getElementById("drop-zone");
const statusLine = document.getElementById("status");
const errorLine = document.getElementById("error");
const results = document.getElementById("results");
const download = document.getElementById("download-csv");
let classes = [];
let rows = [];
let operatingThreshold = null;

function headers() {
  const token = document.getElementById("token").value;
  return token ? { Authorization: "Bearer " + token } : {};
}

function showError(message) {
  errorLine.textContent = message;
  errorLine.hidden = false;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.error || response.statusText;
  } catch (exc) {
    return response.status === 413 ? "The upload is too large." : response.statusText;
  }
}

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    node.setAttribute(key, value);
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

async function explainImage(file, method, layer) {
  const form = new FormData();
  form.append("file", file);
  const url = "/api/explain?method=" + method + "&layer=" + layer;
  const response = await fetch(url, { method: "POST", body: form, headers: headers() });
  if (!response.ok) throw new Error(await errorText(response));
  return URL.createObjectURL(await response.blob());
}

function probabilityBars(result) {
  const list = element("div", { class: "bars" });
  const entries = Object.entries(result.probabilities).sort((a, b) => b[1] - a[1]);
  for (const [label, p] of entries) {
    const row = element("div", { class: "bar-row" });
    row.append(element("span", { class: "label" }, label));
    const bar = element("div", {
      class: "bar", role: "meter", "aria-label": "probability of " + label,
      "aria-valuemin": "0", "aria-valuemax": "1", "aria-valuenow": p.toFixed(3),
    });
    const fill = element("span");
    fill.style.width = (100 * p).toFixed(1) + "%";
    bar.append(fill);
    row.append(bar, element("span", { class: "value" }, (100 * p).toFixed(1) + " %"));
    list.append(row);
  }
  return list;
}

async function showResult(file, result, method, index) {
  const card = element("article", { class: "result", "aria-label": result.filename });
  const picture = element("div");
  const stack = element("div", { class: "stack" });
  const base = element("img", { alt: "The image as the model sees it: " + result.filename });
  const heat = element("img", { alt: "Heatmap of the evidence for the prediction", class: "heatmap" });
  stack.append(base, heat);
  const sliderId = "opacity-" + index;
  const sliderLabel = element("label", { for: sliderId }, "Heatmap opacity");
  const slider = element("input", { id: sliderId, type: "range", min: "0", max: "100", value: "55" });
  slider.addEventListener("input", () => { heat.style.opacity = slider.value / 100; });
  heat.style.opacity = 0.55;
  picture.append(stack, sliderLabel, slider);

  const text = element("div");
  text.append(element("h2", {}, result.filename));
  const predicted = Array.isArray(result.predicted)
    ? (result.predicted.length ? result.predicted.join(", ") : "no finding above 0.5")
    : result.predicted;
  const at = operatingThreshold === null ? ""
    : " (decision at the operating threshold " + operatingThreshold.toFixed(3) + ")";
  text.append(element("p", { class: "predicted" }, "Predicted: " + predicted + at));
  text.append(probabilityBars(result));
  if (result.regions) {
    text.append(element("p", { class: "regions" },
      "Evidence mostly in the " + result.regions.top_region +
      " (the probability drops most when it is hidden)."));
  }
  if (result.anomaly_score !== undefined) {
    text.append(element("p", { class: "anomaly" },
      "Anomaly score: " + result.anomaly_score.toFixed(3) + " (higher is more unusual)."));
  }
  card.append(picture, text);
  results.append(card);
  try {
    base.src = await explainImage(file, method, "image");
    heat.src = await explainImage(file, method, "heatmap");
  } catch (exc) {
    text.append(element("p", { class: "error" }, "No heatmap: " + exc.message));
  }
  if (result.anomaly_score !== undefined) {
    try {
      const map = element("img", {
        class: "anomaly-map", alt: "Anomaly map: where the image is least like healthy ones",
      });
      map.src = await explainImage(file, "anomaly", "overlay");
      text.append(element("p", {}, "Anomaly map (red: least like the healthy images):"), map);
    } catch (exc) {
      text.append(element("p", { class: "error" }, "No anomaly map: " + exc.message));
    }
  }
}

function updateCsv() {
  const quote = (v) => '"' + String(v).replaceAll('"', '""') + '"';
  const lines = [["filename", "predicted", ...classes.map((c) => "p(" + c + ")")].map(quote).join(",")];
  for (const r of rows) {
    const predicted = Array.isArray(r.predicted) ? r.predicted.join("|") : r.predicted;
    lines.push([r.filename, predicted, ...classes.map((c) => r.probabilities[c])].map(quote).join(","));
  }
  const blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
  download.href = URL.createObjectURL(blob);
  download.hidden = rows.length === 0;
}

async function analyse(files) {
  errorLine.hidden = true;
  if (!files.length) return;
  const method = document.getElementById("method").value;
  statusLine.textContent = "Analysing " + files.length + " image(s)…";
  let index = results.children.length;
  for (const file of files) {
    const form = new FormData();
    form.append("file", file);
    let response;
    try {
      response = await fetch("/api/predict", { method: "POST", body: form, headers: headers() });
    } catch (exc) {
      showError("The server could not be reached: " + exc.message);
      break;
    }
    if (!response.ok) {
      showError(file.name + ": " + (await errorText(response)));
      continue;
    }
    const result = (await response.json()).results[0];
    rows.push(result);
    await showResult(file, result, method, index++);
    updateCsv();
  }
  statusLine.textContent = "Done: " + rows.length + " image(s) analysed.";
}

input.addEventListener("change", () => analyse(Array.from(input.files)));
dropZone.addEventListener("dragover", (event) => { event.preventDefault(); dropZone.classList.add("dragging"); });
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("dragging");
  analyse(Array.from(event.dataTransfer.files));
});

function listExplanations(explanations) {
  const select = document.getElementById("method");
  select.replaceChildren(...explanations.map((e) => element("option", { value: e.name }, e.label)));
  document.getElementById("sources").textContent = explanations
    .map((e) => e.label + ": " + e.source).join(". ") + ".";
}

fetch("/healthz").then((r) => r.json()).then((health) => {
  classes = health.classes;
  operatingThreshold = health.operating_threshold;
  listExplanations(health.explanations);
  document.getElementById("model-line").textContent =
    "Model: " + health.model + "; classes: " + health.classes.join(", ") +
    (health.calibrated ? "; calibrated probabilities (temperature scaling)" : "") +
    (health.detector ? "; anomaly detector: " + health.detector : "") + ".";
}).catch(() => showError("The server did not describe its model."));
