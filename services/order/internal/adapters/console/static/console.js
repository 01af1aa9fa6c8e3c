// The onceflow console (ADR 0041): renders the snapshots of /console/events
// and calls the admin endpoints with the token typed in. Data goes into the
// page only as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const samples = []; // [order pending, payment pending] per snapshot, last 120
const adminBase = { order: "/admin/poison", payment: "/console/payment/admin/poison" };

function fmt(v, digits) {
  if (v === null || v === undefined) return "–";
  return Number(v).toFixed(digits || 0);
}

function setText(id, text) { $(id).textContent = text; }

function setBadge(id, up, err) {
  const el = $(id);
  el.textContent = up ? "up" : "down";
  el.className = "badge " + (up ? "up" : "down");
  el.title = err || "";
}

function fillKV(id, obj) {
  const ul = $(id);
  ul.replaceChildren();
  for (const k of Object.keys(obj || {}).sort()) {
    const li = document.createElement("li");
    li.textContent = (k || "(none)") + ": " + fmt(obj[k]);
    li.dataset.key = k;
    ul.append(li);
  }
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function render(s) {
  setBadge("order-status", s.order.up, s.order.error);
  setBadge("payment-status", s.payment.up, s.payment.error);
  setText("orders-per-second", fmt(s.orders_per_second, 1));
  const outcomes = Object.assign({}, s.order.outcomes);
  fillKV("outcomes", outcomes);
  setText("outcomes-note", s.order.metrics ? "" : "(no saga metrics yet)");
  setText("order-outbox-pending", fmt(s.order.outbox_pending));
  setText("order-outbox-age", fmt(s.order.outbox_oldest_age_seconds));
  setText("order-outbox-source", s.order.outbox_source ? "from " + s.order.outbox_source : "");
  setText("payment-outbox-pending", s.payment.up ? fmt(s.payment.outbox_pending) : "down");
  setText("payment-outbox-age", fmt(s.payment.outbox_oldest_age_seconds));
  setText("order-lag", fmt(s.order.lag_total));
  setText("payment-lag", s.payment.up ? fmt(s.payment.lag_total) : "down");
  setText("order-retries", fmt(s.order.retries_total));
  setText("payment-retries", s.payment.up ? fmt(s.payment.retries_total) : "down");
  const poison = {};
  for (const [k, v] of Object.entries(s.order.poison_by_reason || {})) poison["order " + k] = v;
  for (const [k, v] of Object.entries(s.payment.poison_by_reason || {})) poison["payment " + k] = v;
  fillKV("poison-reasons", poison);

  const body = $("recent-orders").tBodies[0];
  body.replaceChildren();
  for (const o of s.recent_orders || []) {
    const tr = document.createElement("tr");
    tr.dataset.id = o.id;
    tr.dataset.status = o.status;
    const id = cell(o.id, "id");
    id.addEventListener("click", () => { $("timeline-id").value = o.id; showTimeline(o.id); });
    const st = document.createElement("td");
    st.className = "status";
    const span = document.createElement("span");
    span.className = "status-" + o.status;
    span.textContent = o.status + (o.cancel_reason ? " (" + o.cancel_reason + ")" : "");
    st.append(span);
    tr.append(id, cell(o.customer_id), cell((o.amount_cents / 100).toFixed(2) + " " + o.currency), st,
      cell(new Date(o.created_at).toLocaleTimeString()));
    body.append(tr);
  }
  setText("errors", (s.errors || []).join(" · "));

  samples.push([s.order.outbox_pending || 0, s.payment.outbox_pending || 0]);
  while (samples.length > 120) samples.shift();
  drawChart();
}

function drawChart() {
  const c = $("backlog-chart");
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const top = Math.max(10, ...samples.map((h) => Math.max(h[0], h[1])));
  g.fillStyle = "#5a6275";
  g.fillText("max " + top, 4, 12);
  [["#1a56c4", 0], ["#e8a200", 1]].forEach(([color, i]) => {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    samples.forEach((h, x) => {
      const px = (x / 119) * (c.width - 1), py = c.height - 4 - (h[i] / top) * (c.height - 20);
      if (x === 0) g.moveTo(px, py); else g.lineTo(px, py);
    });
    g.stroke();
  });
  g.fillStyle = "#1a56c4"; g.fillText("order outbox", c.width - 180, 12);
  g.fillStyle = "#e8a200"; g.fillText("payment outbox", c.width - 95, 12);
}

function connect() {
  const es = new EventSource("/console/events");
  es.addEventListener("open", () => { setText("stream-status", "live"); $("stream-status").className = "badge up"; });
  es.addEventListener("snapshot", (ev) => render(JSON.parse(ev.data)));
  // EventSource reconnects by itself after each stream ends (ADR 0041).
  es.addEventListener("error", () => { setText("stream-status", "reconnecting…"); $("stream-status").className = "badge"; });
}

// showDiagnosis shows the order's diagnosis (GET /orders/{id}/diagnosis, an
// admin request): nothing without a token.
async function showDiagnosis(id) {
  const el = $("diagnosis");
  el.textContent = "";
  delete el.dataset.cause;
  if (!token()) return;
  const r = await fetch("/orders/" + encodeURIComponent(id) + "/diagnosis", { headers: { Authorization: "Bearer " + token() } });
  const d = await r.json().catch(() => ({}));
  if (!r.ok) { el.textContent = "diagnosis: " + (d.detail || d.title || ("HTTP " + r.status)); return; }
  el.dataset.cause = d.cause ? d.cause.code : "";
  el.textContent = d.status + ", " + d.stage + (d.cause
    ? " · held by " + d.cause.code + " in the " + d.cause.service + " service: " + d.cause.detail + " · resolve: " + d.cause.remedy
    : " · nothing holds it");
}

async function showTimeline(id) {
  showDiagnosis(id).catch((e) => setText("diagnosis", "diagnosis: " + e.message));
  setText("timeline-error", "");
  const body = $("timeline").tBodies[0];
  body.replaceChildren();
  const r = await fetch("/orders/" + encodeURIComponent(id) + "/timeline");
  const data = await r.json().catch(() => ({}));
  if (!r.ok) { setText("timeline-error", data.detail || data.title || ("HTTP " + r.status)); return; }
  for (const e of data.entries || []) {
    const tr = document.createElement("tr");
    tr.dataset.type = e.type;
    tr.append(cell(new Date(e.at).toLocaleTimeString()), cell(e.topic), cell(e.type), cell(String(e.retries)),
      cell(e.poisoned ? e.poisoned.reason_code : ""), cell(e.replayed_at || ""));
    body.append(tr);
  }
}

function token() {
  const t = $("token").value.trim();
  sessionStorage.setItem("onceflow-admin-token", t);
  return t;
}

async function admin(service, method, path) {
  const r = await fetch(adminBase[service] + path, { method, headers: { Authorization: "Bearer " + token() } });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.detail || data.title || data.message || ("HTTP " + r.status));
  return data;
}

// loadPoison shows the newest page of a service's poison topic or, with more,
// adds the next (older) page below it: each click reads one page of the topic
// (ADR 0052), and the "older" button shows while there is a next page.
async function loadPoison(service, more) {
  const errId = "poison-" + service + "-error";
  setText(errId, "");
  const table = $("poison-" + service);
  if (table.dataset.loading === "1") return; // one page at a time
  if (more && table.dataset.next === undefined) return;
  table.dataset.loading = "1";
  const body = table.tBodies[0];
  try {
    const data = await admin(service, "GET", more ? "?cursor=" + encodeURIComponent(table.dataset.next) : "");
    if (!more) body.replaceChildren();
    for (const m of data.messages || []) {
      const tr = document.createElement("tr");
      tr.dataset.offset = m.offset;
      tr.dataset.replays = (m.replays || []).length;
      const actions = document.createElement("td");
      actions.append(
        button("inspect", async () => {
          const d = await admin(service, "GET", "/" + m.offset);
          delete $("poison-detail").dataset.dryRun;
          $("poison-detail").textContent = JSON.stringify(d, null, 2);
        }),
        button("dry run", async () => showDryRun(service, await admin(service, "POST", "/" + m.offset + "/dry-run"))),
        button("replay", async () => { await admin(service, "POST", "/" + m.offset + "/replay"); await loadPoison(service); }),
        confirmButton("discard up to here", async () => { await admin(service, "POST", "/purge?up_to=" + m.offset); await loadPoison(service); }));
      tr.append(cell(String(m.offset)), cell(m.reason_code || m.reason), cell(m.event_type || ""), cell(m.order_id || ""),
        cell(String((m.replays || []).length)), actions);
      body.append(tr);
    }
    if (data.next_cursor == null) delete table.dataset.next; else table.dataset.next = data.next_cursor;
    $("poison-" + service + "-more").hidden = data.next_cursor == null;
  } catch (e) {
    setText(errId, e.message);
  } finally {
    delete table.dataset.loading;
  }
}

// showDryRun shows in the detail pane what replaying one of a service's
// messages would change (POST /{offset}/dry-run: the handler ran in a
// transaction that was rolled back, so nothing changed).
function showDryRun(service, d) {
  const r = d.result, el = $("poison-detail");
  el.dataset.dryRun = service + ":" + (r.would_succeed ? "succeed" : "fail");
  const events = (r.events || []).map((e) => e.type + " to " + e.topic + (e.key ? " (key " + e.key + ")" : ""));
  el.textContent = [
    "dry run of offset " + d.message.offset + " (" + (d.message.reason_code || d.message.reason) + "); nothing was changed",
    r.would_succeed ? "a replay would succeed" : "a replay would fail again: " + r.reason_code,
    "state before: " + JSON.stringify(r.before ?? null),
    "state after:  " + JSON.stringify(r.after ?? null),
    "events it would emit: " + (events.length ? events.join(", ") : "none"),
  ].join("\n");
}

function button(label, fn) {
  const b = document.createElement("button");
  b.textContent = label;
  b.className = "action-" + label.split(" ")[0];
  b.addEventListener("click", () => fn().catch((e) => {
    delete $("poison-detail").dataset.dryRun;
    setText("poison-detail", "error: " + e.message);
  }));
  return b;
}

// confirmButton asks for a second click instead of a dialog.
function confirmButton(label, fn) {
  const b = button(label, async () => {
    if (b.dataset.armed !== "1") { b.dataset.armed = "1"; b.textContent = "click again to discard"; return; }
    await fn();
  });
  return b;
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = sessionStorage.getItem("onceflow-admin-token") || "";
  $("timeline-form").addEventListener("submit", (ev) => { ev.preventDefault(); showTimeline($("timeline-id").value.trim()); });
  $("poison-order-load").addEventListener("click", () => loadPoison("order"));
  $("poison-payment-load").addEventListener("click", () => loadPoison("payment"));
  $("poison-order-more").addEventListener("click", () => loadPoison("order", true));
  $("poison-payment-more").addEventListener("click", () => loadPoison("payment", true));
  drawChart();
  connect();
});
