// The control plane's console: the same /v2 API and the same API keys as `langgraph deploy`.
// Everything shown is set with textContent, never as HTML.
"use strict";

const state = { key: localStorage.getItem("stead-api-key") || "", selected: null, timer: null };

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "X-Api-Key": state.key, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) {
    const detail = await response.json().then((b) => b.detail, () => response.statusText);
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.status === 204 ? null : response.json();
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

function cell(row, content) {
  const td = row.insertCell();
  if (content instanceof Node) td.appendChild(content);
  else td.textContent = content ?? "";
  return td;
}

function badge(status) {
  const span = document.createElement("span");
  span.className = `status ${status}`;
  span.textContent = status;
  return span;
}

function button(label, onClick, className) {
  const b = document.createElement("button");
  b.textContent = label;
  if (className) b.className = className;
  b.addEventListener("click", (event) => { event.preventDefault(); run(onClick); });
  return b;
}

function link(url) {
  if (!url) return "";
  const a = document.createElement("a");
  a.href = url;
  a.textContent = url;
  return a;
}

async function run(action) {
  try { showError(null); await action(); } catch (error) { showError(error); }
}

async function loadDeployments() {
  const { resources } = await api("GET", "/v2/deployments?limit=100&offset=0");
  const body = document.querySelector("#deployment-list tbody");
  body.replaceChildren();
  for (const d of resources) {
    const row = body.insertRow();
    row.dataset.id = d.id;
    const name = document.createElement("a");
    name.href = "#";
    name.textContent = d.name;
    name.addEventListener("click", (e) => { e.preventDefault(); run(() => selectDeployment(d)); });
    cell(row, name);
    cell(row, badge(d.status));
    cell(row, link(d.source_config.custom_url));
    cell(row, d.managed_by === "self" ? `self-reporting server, ${healthSummary(d.health)}` : d.source);
    cell(row, d.active_revision_id || "none yet");
    cell(row, d.status === "AWAITING_DELETE" ? "" : button("Delete", () => deleteDeployment(d), "danger"));
  }
  if (state.selected) {
    const current = resources.find((d) => d.id === state.selected.id);
    if (current) await showRevisions(current);
  }
}

function healthSummary(health) {
  const failing = Object.entries(health || {}).filter(([, state]) => state !== "ok");
  if (!health) return "no report yet";
  return failing.length ? failing.map(([check, state]) => `${check}: ${state}`).join(", ") : "healthy";
}

async function selectDeployment(deployment) {
  state.selected = deployment;
  document.getElementById("logs").hidden = true;
  document.getElementById("logs-title").hidden = true;
  await showRevisions(deployment);
}

async function showRevisions(deployment) {
  document.getElementById("deployment-detail").hidden = false;
  document.getElementById("detail-name").textContent = `Revisions of ${deployment.name}`;
  const { resources } = await api("GET", `/v2/deployments/${deployment.id}/revisions?limit=100`);
  const body = document.querySelector("#revision-list tbody");
  body.replaceChildren();
  for (const r of resources) {
    const row = body.insertRow();
    row.dataset.id = r.id;
    const replaced = r.status === "DEPLOYED" && r.id !== deployment.active_revision_id;
    cell(row, r.id);
    cell(row, badge(replaced ? "REPLACED" : r.status));
    cell(row, new Date(r.created_at).toLocaleString());
    const actions = cell(row, button("Build logs", () => showLogs(deployment, r, "build")));
    actions.appendChild(button("Deploy logs", () => showLogs(deployment, r, "deploy")));
    if (r.id !== deployment.active_revision_id && r.status === "DEPLOYED") {
      actions.appendChild(button("Roll back to this", () => rollBack(deployment, r)));
    }
  }
}

async function showLogs(deployment, revision, type) {
  const path = `/v2/deployments/${deployment.id}/revisions/${revision.id}/logs?type=${type}&limit=1000`;
  const { logs } = await api("GET", path);
  const title = document.getElementById("logs-title");
  title.textContent = `${type === "build" ? "Build" : "Deploy"} logs of ${revision.id}`;
  title.hidden = false;
  const pre = document.getElementById("logs");
  pre.textContent = logs.map((l) => `[${l.timestamp}] [${l.level}] ${l.message}`).join("\n") || "(no lines)";
  pre.hidden = false;
}

async function rollBack(deployment, revision) {
  if (!confirm(`Roll ${deployment.name} back to revision ${revision.id}?`)) return;
  state.selected = await api("POST", `/v2/deployments/${deployment.id}/revisions/${revision.id}/redeploy`);
  await loadDeployments();
}

async function deleteDeployment(deployment) {
  if (!confirm(`Delete ${deployment.name}? Its data goes with it.`)) return;
  await api("DELETE", `/v2/deployments/${deployment.id}`);
  if (state.selected && state.selected.id === deployment.id) {
    state.selected = null;
    document.getElementById("deployment-detail").hidden = true;
  }
  await loadDeployments();
}

async function loadListeners() {
  const { resources } = await api("GET", "/v2/listeners?limit=100&offset=0");
  const body = document.querySelector("#listener-list tbody");
  body.replaceChildren();
  for (const l of resources) {
    const row = body.insertRow();
    row.dataset.id = l.id;
    cell(row, l.compute_id);
    cell(row, l.backend || l.compute_type);
    cell(row, badge(l.status));
    cell(row, l.last_heartbeat_at ? new Date(l.last_heartbeat_at).toLocaleString() : "never");
    cell(row, l.id);
  }
  for (const select of document.querySelectorAll(".listener-choice")) {
    select.replaceChildren(...resources.map((l) => new Option(`${l.compute_id} (${l.status})`, l.id)));
  }
}

async function createFromImage(form) {
  const data = new FormData(form);
  await api("POST", "/v2/deployments", {
    name: data.get("name"),
    source: "external_docker",
    source_config: { listener_id: data.get("listener_id") || null },
    source_revision_config: { image_uri: data.get("image_uri") },
    secrets: [],
  });
  form.reset();
  await show("deployments");
}

async function createFromUpload(form) {
  const data = new FormData(form);
  const created = await api("POST", "/v2/deployments", {
    name: data.get("name"),
    source: "internal_source",
    source_config: { listener_id: data.get("listener_id") || null },
    source_revision_config: {},
    secrets: [],
  });
  const target = await api("POST", `/v2/deployments/${created.id}/upload-url`, {});
  const put = await fetch(target.upload_url, {
    method: "PUT",
    headers: { "Content-Type": "application/gzip" },
    body: data.get("tarball"),
  });
  if (!put.ok) throw new Error(`upload refused: ${(await put.json()).detail}`);
  await api("PATCH", `/v2/deployments/${created.id}`, {
    revision_source: "internal_source",
    source_revision_config: {
      source_tarball_path: target.object_path,
      langgraph_config_path: data.get("langgraph_config_path"),
    },
  });
  form.reset();
  await show("deployments");
}

async function show(view) {
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== view;
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.view === view);
  if (view === "deployments") await loadDeployments();
  else await loadListeners();
}

async function start() {
  document.getElementById("app").hidden = false;
  await show("deployments");
  clearInterval(state.timer);
  state.timer = setInterval(() => {
    const view = document.querySelector("nav button.active").dataset.view;
    if (view !== "create") run(() => show(view));
  }, 3000);
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = document.getElementById("api-key").value.trim();
  run(async () => {
    await api("GET", "/v2/listeners?limit=1");
    localStorage.setItem("stead-api-key", state.key);
    await start();
  });
});
for (const b of document.querySelectorAll("nav button")) {
  b.addEventListener("click", () => run(() => show(b.dataset.view)));
}
document.getElementById("create-image").addEventListener("submit", (event) => {
  event.preventDefault();
  run(() => createFromImage(event.target));
});
document.getElementById("create-upload").addEventListener("submit", (event) => {
  event.preventDefault();
  run(() => createFromUpload(event.target));
});
if (state.key) run(start);
