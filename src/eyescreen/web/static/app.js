// Page logic: send the photo or URL to the JSON API and show the result in the chosen language.
"use strict";

const STRINGS = JSON.parse(document.getElementById("strings").textContent);
let language = document.documentElement.lang in STRINGS ? document.documentElement.lang : "en";
let lastError = null;
let lastResult = null;

function text(key) {
  return STRINGS[language][key] ?? STRINGS.en[key] ?? key;
}

function applyLanguage() {
  document.documentElement.lang = language;
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = text(element.dataset.i18n);
  }
  for (const element of document.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = text(element.dataset.i18nPlaceholder);
  }
  if (lastError) showError(lastError.code, lastError.message);
  if (lastResult) showResult(lastResult);
}

function setBusy(busy) {
  const status = document.getElementById("status");
  status.hidden = !busy;
  status.textContent = busy ? text("working") : "";
  for (const button of document.querySelectorAll("button[type=submit]")) button.disabled = busy;
}

function showError(code, message) {
  lastError = { code, message };
  lastResult = null;
  document.getElementById("result").hidden = true;
  // The translation for the error code, if the page has one, followed by the server's English message if any.
  // Errors found in the page itself (no file, no URL, network) have no server message.
  const known = STRINGS[language]["error_" + code];
  const details = message ? " (" + message + ")" : "";
  document.getElementById("error-message").textContent = known ? known + details : message;
  document.getElementById("error").hidden = false;
}

function showResult(result) {
  lastResult = result;
  lastError = null;
  document.getElementById("error").hidden = true;
  document.getElementById("result-label").textContent = text("class_" + result.label);
  document.getElementById("result-label").dataset.label = result.label;
  document.getElementById("result-uncertain").hidden = result.status !== "uncertain";
  for (const row of document.querySelectorAll("#probabilities tbody tr")) {
    const probability = result.probabilities[row.dataset.class];
    row.querySelector("meter").value = probability;
    row.querySelector(".percent").textContent = (probability * 100).toFixed(1) + "%";
    row.classList.toggle("top", row.dataset.class === result.label);
  }
  document.getElementById("result-model").textContent = text("timing")
    .replace("{name}", result.model.name)
    .replace("{version}", result.model.version)
    .replace("{total}", Math.round(result.timings_ms.total));
  document.getElementById("result").hidden = false;
}

async function send(request) {
  setBusy(true);
  try {
    const response = await request;
    const body = await response.json().catch(() => null);
    if (response.ok && body) {
      showResult(body);
    } else if (body && body.error) {
      showError(body.error.code, body.error.message);
    } else {
      showError("http_" + response.status, "HTTP " + response.status);
    }
  } catch (error) {
    showError("network");
  } finally {
    setBusy(false);
  }
}

document.getElementById("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = document.getElementById("file-input").files[0];
  if (!file) {
    showError("no_file");
    return;
  }
  const preview = document.getElementById("preview");
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  const form = new FormData();
  form.append("file", file);
  send(fetch("/api/v1/predictions", { method: "POST", body: form }));
});

document.getElementById("url-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const url = document.getElementById("url-input").value.trim();
  if (!url) {
    showError("no_url");
    return;
  }
  document.getElementById("preview").hidden = true;
  send(fetch("/api/v1/predictions/url", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ url }),
  }));
});

document.getElementById("language-switch").addEventListener("click", () => {
  language = language === "en" ? "zh-CN" : "en";
  document.cookie = "lang=" + language + "; path=/; max-age=31536000; samesite=lax";
  applyLanguage();
});
