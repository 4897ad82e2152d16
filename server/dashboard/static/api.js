// Shared by the dashboard's pages: the bearer token (kept for this tab only) and authenticated requests.
"use strict";

const TOKEN_KEY = "sentinel.dashboard.token";

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

// Shows the token form after a 401/403 (auth_mode = jwt); `retry` runs once a token is entered.
function askForToken(message, retry) {
  const form = document.getElementById("token-form");
  document.getElementById("token-message").textContent = message;
  form.hidden = false;
  form.onsubmit = (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
    form.hidden = true;
    retry();
  };
}

// fetch() with the token; on 401/403 asks for one and resolves to null.
async function apiFetch(url, retry) {
  const response = await fetch(url, { headers: authHeaders(), cache: "no-store" });
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    askForToken((body.error || response.statusText) + ": paste a bearer token with the role ops-viewer", retry);
    return null;
  }
  return response;
}

function formatNumber(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "n/a";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function formatMs(seconds) {
  return seconds === null || seconds === undefined ? "n/a" : formatNumber(seconds * 1000, 2) + " ms";
}
