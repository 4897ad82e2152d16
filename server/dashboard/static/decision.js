// The decision page: looks a transaction up by id (?id=... or the form) and shows what the ledger holds.
"use strict";

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function show(found) {
  const entry = found.entry;
  const decision = entry.decision;
  text("outcome", decision.outcome.replace("OUTCOME_", ""));
  text("flags", [decision.degraded ? "degraded" : "", decision.replayed ? "replayed" : "", "caller " + (decision.caller || "n/a")].filter(Boolean).join(" · "));
  text("risk-score", formatNumber(decision.risk_score, 4));
  text("model-score", formatNumber(decision.model_score, 4));
  text("model-version", decision.model_version);
  const chain = found.chain;
  const chainText = chain.verified === true ? "verifies" : chain.verified === false ? "BROKEN" : "not checked";
  text("chain", chainText);
  document.getElementById("chain").className = chain.verified === true ? "ok" : "error";
  text("chain-detail", chain.verified === true
    ? "chain " + chain.chain_id + ": " + chain.entries_checked + " entries recomputed from the " + chain.from
    : chain.detail || "");
  document.getElementById("reasons").replaceChildren(...(decision.reasons || []).map((reason) => {
    const item = document.createElement("li");
    item.textContent = reason.code + ": " + reason.description;
    return item;
  }));
  document.querySelector("#rules tbody").replaceChildren(...(decision.rules_fired || []).map((rule) => {
    const row = document.createElement("tr");
    for (const cell of [rule.rule_id, rule.rule_version, rule.action, rule.shadow ? "yes" : "no"]) {
      const td = document.createElement("td");
      td.textContent = String(cell);
      row.append(td);
    }
    return row;
  }));
  const facts = { sequence: entry.sequence, "recorded at": entry.recorded_at, "entry hash": entry.entry_hash, "decided at": decision.decided_at, "idempotency key": decision.idempotency_key };
  document.getElementById("entry").replaceChildren(...Object.entries(facts).flatMap(([name, value]) => {
    const term = document.createElement("dt");
    term.textContent = name;
    const detail = document.createElement("dd");
    detail.textContent = value;
    return [term, detail];
  }));
  text("transaction", JSON.stringify(entry.transaction, null, 2));
  document.getElementById("result").hidden = false;
}

async function lookUp() {
  const id = document.getElementById("transaction-id").value.trim();
  const error = document.getElementById("lookup-error");
  error.hidden = true;
  document.getElementById("result").hidden = true;
  if (!id) return;
  history.replaceState(null, "", "?id=" + encodeURIComponent(id));
  try {
    const response = await apiFetch("api/decisions/" + encodeURIComponent(id), lookUp);
    if (response === null) return;
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    show(body);
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  }
}

document.getElementById("lookup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  lookUp();
});
const given = new URLSearchParams(location.search).get("id");
if (given) {
  document.getElementById("transaction-id").value = given;
  lookUp();
}
