"""The dashboard: one self-contained page (no CDN: machines may have no internet) fed by the SSE stream.

Kept as a Python string so it ships inside the package however tickwire is installed.
"""

DASHBOARD_HTML = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tickwire: live prices and P&amp;L</title>
<style>
  :root { --bg:#0f1419; --panel:#171d24; --line:#2a333d; --text:#d8dee6; --dim:#7d8a97;
          --up:#3fb950; --down:#f85149; --accent:#58a6ff; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;
         background:var(--bg); color:var(--text); }
  header { display:flex; flex-wrap:wrap; align-items:baseline; gap:1.5rem; padding:.8rem 1.2rem;
           border-bottom:1px solid var(--line); }
  header h1 { font-size:1.1rem; margin:0; }
  #connection { font-size:.85rem; color:var(--dim); }
  #connection.live { color:var(--up); } #connection.down { color:var(--down); }
  main { display:grid; grid-template-columns:repeat(auto-fit,minmax(50rem,1fr)); gap:1rem; padding:1rem 1.2rem; }
  section { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:.6rem .8rem;
            overflow-x:auto; }
  h2 { font-size:.95rem; margin:.2rem 0 .6rem; color:var(--dim); font-weight:600; }
  table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
  th, td { padding:.3rem .45rem; text-align:right; border-bottom:1px solid var(--line); white-space:nowrap; }
  th:first-child, td:first-child { text-align:left; }
  th { color:var(--dim); font-weight:500; font-size:.8rem; }
  td.symbol { font-weight:600; }
  tfoot td { font-weight:600; border-bottom:none; border-top:2px solid var(--line); }
  .up { color:var(--up); } .down { color:var(--down); } .dim { color:var(--dim); }
  .flash { animation: flash .6s ease-out; }
  @keyframes flash { from { background:#2d3a4a; } to { background:transparent; } }
  svg.spark { width:140px; height:28px; vertical-align:middle; }
  svg.spark polyline { fill:none; stroke:var(--accent); stroke-width:1.5; }
  #total { font-size:1.2rem; font-weight:600; }
  .empty { color:var(--dim); padding:.6rem .45rem; }
  form { display:flex; flex-wrap:wrap; gap:.5rem; align-items:center; margin-top:.7rem; font-size:.85rem; }
  input { background:var(--bg); color:var(--text); border:1px solid var(--line); border-radius:4px;
          padding:.3rem .45rem; width:7rem; font:inherit; }
  button { background:#1f6feb; color:#fff; border:0; border-radius:4px; padding:.35rem .8rem; font:inherit;
           cursor:pointer; }
  .result { color:var(--dim); } .result.error { color:var(--down); } .result.ok { color:var(--up); }
  #token-box { font-size:.8rem; color:var(--dim); }
  #token-box input { width:10rem; }
</style>
</head>
<body>
<header>
  <h1>tickwire</h1>
  <span>account <strong id="account"></strong></span>
  <span>total unrealized P&amp;L <span id="total" data-field="total">—</span></span>
  <span class="dim">times in <span id="timezone"></span></span>
  <span id="connection" class="down">connecting…</span>
  <label id="token-box">API token <input id="token" type="password" autocomplete="off"
    placeholder="if the API needs one"></label>
</header>
<main>
  <section>
    <h2>Live prices</h2>
    <table id="prices">
      <thead><tr><th>Symbol</th><th>Bid</th><th>Ask</th><th>Spread</th><th>Mid</th><th>Prev close</th>
        <th>Change</th><th>Change %</th><th>Chart</th><th>Exchange time</th></tr></thead>
      <tbody></tbody>
    </table>
    <div class="empty" id="prices-empty">No prices yet: add a symbol below, or start the pipeline
      (<code>make run</code>) so the ingest streams its symbols.</div>
    <form id="subscribe-form">
      <label>Add symbol <input name="symbol" placeholder="e.g. NVDA" required></label>
      <button type="submit">Subscribe</button>
      <span class="result" id="subscribe-result"></span>
    </form>
  </section>
  <section>
    <h2>Positions and unrealized P&amp;L</h2>
    <table id="positions">
      <thead><tr><th>Symbol</th><th>Qty</th><th>Avg entry</th><th>Mark</th><th>Market value</th>
        <th>Unrealized P&amp;L</th><th>P&amp;L %</th><th>Source</th></tr></thead>
      <tbody></tbody>
      <tfoot><tr><td>Total</td><td></td><td></td><td></td><td data-field="total_market_value">—</td>
        <td data-field="total_unrealized">—</td><td data-field="total_pnl_pct">—</td><td></td></tr></tfoot>
    </table>
    <div class="empty" id="positions-empty">No open positions in this account: add one below.</div>
    <form id="position-form">
      <label>Symbol <input name="symbol" placeholder="AAPL" required></label>
      <label>Qty <input name="qty" placeholder="100 (-50 short)" required></label>
      <label>Avg entry <input name="avg_entry_price" placeholder="150.25" required></label>
      <button type="submit">Set position</button>
      <span class="result" id="position-result"></span>
    </form>
  </section>
</main>
<script>
"use strict";
const HISTORY = 300;  // points per chart
const HISTORY_SECONDS = 300;  // how far back a chart starts
const params = new URLSearchParams(location.search);
const account = params.get("account") || "default";
document.getElementById("account").textContent = account;
const zone = new Intl.DateTimeFormat(undefined, {timeZoneName: "short"}).formatToParts(new Date())
  .find(p => p.type === "timeZoneName")?.value || "local time";
document.getElementById("timezone").textContent = zone;
const timeFormat = new Intl.DateTimeFormat(undefined, {hour: "2-digit", minute: "2-digit", second: "2-digit",
  fractionalSecondDigits: 3, hour12: false, timeZoneName: "short"});
const history = new Map();  // symbol -> [{t: ms, mid: number}]
const decimals = new Map();  // symbol -> {price, mid}: decimals shown (2, or more once seen; never fewer)
const closes = new Map();  // symbol -> previous close (string) or null
const requested = new Set();  // symbols whose history was asked for
const positions = new Map();  // symbol -> {qty, avg, mark, pnl} as strings

function places(text) { const i = String(text).indexOf("."); return i < 0 ? 0 : String(text).length - i - 1; }
// Quoted prices (bid, ask, close, entry) keep the symbol's tick decimals; mids and marks may be half a tick.
function seeDecimals(symbol, prices, mids) {
  const d = decimals.get(symbol) || {price: 2, mid: 2};
  for (const v of prices) if (v !== null && v !== undefined) d.price = Math.max(d.price, places(v));
  d.mid = Math.max(d.mid, d.price);
  for (const v of mids) if (v !== null && v !== undefined) d.mid = Math.max(d.mid, places(v));
  decimals.set(symbol, d);
  return d;
}
function fixed(value, d) { return value === null || value === undefined ? null : Number(value).toFixed(d); }
function money(value) { return value === null || value === undefined || Number.isNaN(value) ? null
  : value.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2}); }
function signed(text) { return text === null ? null : (Number(text) > 0 ? "+" + text : text); }
function signClass(value) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "dim";
  const n = Number(value); return n < 0 ? "down" : (n > 0 ? "up" : "");
}
function showTime(rfc3339) {
  if (!rfc3339) return null;
  const ms = Date.parse(rfc3339.replace(/(\.\d{3})\d+/, "$1"));
  return Number.isNaN(ms) ? rfc3339 : timeFormat.format(new Date(ms));
}
function cell(row, field) { return row.querySelector('[data-field="' + field + '"]'); }
function setText(el, text, cls) {
  const value = text === null || text === undefined ? "—" : String(text);
  if (el.textContent !== value) {
    el.textContent = value;
    el.classList.remove("flash"); void el.offsetWidth; el.classList.add("flash");
  }
  if (cls !== undefined) { el.classList.remove("up", "down", "dim"); if (cls) el.classList.add(cls); }
}
function showEmpty(tableId) {
  const rows = document.querySelector("#" + tableId + " tbody").children.length;
  document.getElementById(tableId + "-empty").hidden = rows > 0;
  const foot = document.querySelector("#" + tableId + " tfoot");
  if (foot) foot.hidden = rows === 0;
}
function ensureRow(tableId, symbol, fields) {
  const body = document.querySelector("#" + tableId + " tbody");
  let row = body.querySelector('tr[data-symbol="' + CSS.escape(symbol) + '"]');
  if (!row) {
    row = document.createElement("tr");
    row.dataset.symbol = symbol;
    for (const field of fields) {
      const td = document.createElement("td");
      td.dataset.field = field;
      if (field === "symbol") { td.className = "symbol"; td.textContent = symbol; }
      if (field === "chart") {
        const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
        svg.setAttribute("class", "spark"); svg.setAttribute("viewBox", "0 0 140 28");
        svg.setAttribute("preserveAspectRatio", "none");
        svg.appendChild(document.createElementNS("http://www.w3.org/2000/svg", "polyline"));
        td.appendChild(svg);
      }
      row.appendChild(td);
    }
    const before = [...body.children].find(r => r.dataset.symbol > symbol);
    body.insertBefore(row, before || null);
  }
  showEmpty(tableId);
  return row;
}
function drawChart(symbol) {
  const row = document.querySelector('#prices tr[data-symbol="' + CSS.escape(symbol) + '"]');
  const points = (history.get(symbol) || []).map(p => p.mid);
  const line = row && row.querySelector("polyline");
  if (!line || points.length === 0) return;
  const lo = Math.min(...points), hi = Math.max(...points), span = hi - lo || 1;
  const step = points.length > 1 ? 140 / (points.length - 1) : 0;
  line.setAttribute("points", points.map((p, i) =>
    (i * step).toFixed(1) + "," + (26 - ((p - lo) / span) * 24).toFixed(1)).join(" "));
  row.querySelector("svg").dataset.points = String(points.length);
}
function addPoint(symbol, mid, timestamp) {
  const points = history.get(symbol) || [];
  points.push({t: Date.parse((timestamp || "").replace(/(\.\d{3})\d+/, "$1")) || Date.now(), mid: Number(mid)});
  if (points.length > HISTORY) points.shift();
  history.set(symbol, points);
}
async function loadHistory(symbol) {
  if (requested.has(symbol)) return;
  requested.add(symbol);
  try {
    const response = await fetch("api/v1/prices/" + encodeURIComponent(symbol) + "/history?seconds=" + HISTORY_SECONDS);
    if (!response.ok) return;
    const body = await response.json();
    closes.set(symbol, body.previous_close);
    seeDecimals(symbol, [], body.points.map(p => p.mid));  // decimals fixed from the start, not on the first half-tick
    const live = history.get(symbol) || [];
    const first = live.length ? live[0].t : Infinity;
    const past = body.points.map(p => ({t: Date.parse(p.timestamp.replace(/(\.\d{3})\d+/, "$1")), mid: Number(p.mid)}))
      .filter(p => p.t < first);  // live points already cover the rest
    history.set(symbol, past.concat(live).slice(-HISTORY));
    drawChart(symbol);
    showChange(symbol);
  } catch (e) { requested.delete(symbol); }
}
const PRICE_FIELDS = ["symbol", "bid", "ask", "spread", "mid", "close", "change", "change_pct", "chart", "timestamp"];
function showChange(symbol) {
  const row = document.querySelector('#prices tr[data-symbol="' + CSS.escape(symbol) + '"]');
  if (!row) return;
  const close = closes.get(symbol), mid = row.dataset.mid;
  const d = seeDecimals(symbol, [close], []);
  setText(cell(row, "close"), fixed(close, d.price));
  if (close === null || close === undefined || mid === undefined || Number(close) === 0) {
    setText(cell(row, "change"), null, "dim"); setText(cell(row, "change_pct"), null, "dim"); return;
  }
  const scale = 10 ** d.mid;
  const change = (Math.round(Number(mid) * scale) - Math.round(Number(close) * scale)) / scale;
  setText(cell(row, "change"), signed(change.toFixed(d.mid)), signClass(change));
  setText(cell(row, "change_pct"), signed((change / Number(close) * 100).toFixed(2)) + "%", signClass(change));
}
function showPrice(symbol, bid, ask, mid, timestamp) {
  const row = ensureRow("prices", symbol, PRICE_FIELDS);
  const d = seeDecimals(symbol, [bid, ask], [mid]);
  const scale = 10 ** d.price;
  row.dataset.mid = mid;
  addPoint(symbol, mid, timestamp);
  setText(cell(row, "bid"), fixed(bid, d.price)); setText(cell(row, "ask"), fixed(ask, d.price));
  const spread = (Math.round(Number(ask) * scale) - Math.round(Number(bid) * scale)) / scale;
  setText(cell(row, "spread"), spread.toFixed(d.price));
  setText(cell(row, "mid"), fixed(mid, d.mid));
  setText(cell(row, "timestamp"), showTime(timestamp));
  drawChart(symbol);
  showChange(symbol);
  loadHistory(symbol);
  const held = positions.get(symbol);
  if (held) showPositionRow(symbol);
}
const POSITION_FIELDS = ["symbol", "qty", "avg_entry_price", "mark_price", "market_value", "unrealized_pnl",
                         "pnl_pct", "price_source"];
function showPosition(p) {
  const body = document.querySelector("#positions tbody");
  if (Number(p.qty) === 0) {
    positions.delete(p.symbol);
    const row = body.querySelector('tr[data-symbol="' + CSS.escape(p.symbol) + '"]');
    if (row) row.remove();
    showEmpty("positions"); showTotals();
    return;
  }
  const known = positions.get(p.symbol) || {};
  let avg = p.avg_entry_price ?? known.avg;
  if (avg === undefined && p.mark_price !== null && p.unrealized_pnl !== null) {  // pnl events carry no avg
    avg = (Number(p.mark_price) - Number(p.unrealized_pnl) / Number(p.qty)).toFixed(2);
  }
  positions.set(p.symbol, {qty: p.qty, avg: avg, mark: p.mark_price, pnl: p.unrealized_pnl, source: p.price_source});
  showPositionRow(p.symbol);
}
function showPositionRow(symbol) {
  const p = positions.get(symbol);
  const row = ensureRow("positions", symbol, POSITION_FIELDS);
  const d = seeDecimals(symbol, [p.avg], [p.mark]);
  setText(cell(row, "qty"), p.qty);
  setText(cell(row, "avg_entry_price"), fixed(p.avg, d.price));
  setText(cell(row, "mark_price"), fixed(p.mark, d.mid));
  setText(cell(row, "market_value"), p.mark === null ? null : money(Number(p.qty) * Number(p.mark)));
  setText(cell(row, "unrealized_pnl"), p.pnl === null ? null : money(Number(p.pnl)), signClass(p.pnl));
  const cost = Math.abs(Number(p.qty) * Number(p.avg));
  setText(cell(row, "pnl_pct"), p.pnl === null || !cost ? null : signed((Number(p.pnl) / cost * 100).toFixed(2)) + "%",
          signClass(p.pnl));
  setText(cell(row, "price_source"), p.source);
  showTotals();
}
let accountTotal = null;
function showTotals() {
  let value = 0, cost = 0, pnl = 0;
  for (const p of positions.values()) {
    if (p.mark !== null) value += Number(p.qty) * Number(p.mark);
    cost += Math.abs(Number(p.qty) * Number(p.avg));
    if (p.pnl !== null) pnl += Number(p.pnl);
  }
  const foot = document.querySelector("#positions tfoot");
  const total = accountTotal ?? (positions.size ? pnl.toFixed(2) : "0.00");
  setText(cell(foot, "total_market_value"), money(value));
  setText(cell(foot, "total_unrealized"), total === null ? null : money(Number(total)), signClass(total));
  setText(cell(foot, "total_pnl_pct"), cost ? signed((Number(total) / cost * 100).toFixed(2)) + "%" : null,
          signClass(total));
  setText(document.getElementById("total"), total === null ? null : money(Number(total)), signClass(total));
}
function onSnapshot(snap) {
  for (const id of ["prices", "positions"]) document.querySelector("#" + id + " tbody").replaceChildren();
  history.clear(); positions.clear(); requested.clear();
  accountTotal = snap.total ? snap.total.total_unrealized : (Object.keys(snap.pnl).length ? null : "0.00");
  for (const [symbol, p] of Object.entries(snap.prices)) showPrice(symbol, p.bid, p.ask, p.mid, p.timestamp);
  for (const p of Object.values(snap.pnl)) showPosition(p);
  showTotals(); showEmpty("prices"); showEmpty("positions");
}
// The position of the last change received: the server resumes right after it, so a restart of the API or a
// lost connection leaves no hole (the browser resends it as Last-Event-ID; a new EventSource needs the query).
let lastEventId = null;
let source = null;
function connect() {
  const status = document.getElementById("connection");
  let url = "api/v1/stream?account=" + encodeURIComponent(account);
  if (lastEventId) url += "&last_event_id=" + encodeURIComponent(lastEventId);
  const current = source = new EventSource(url);
  const seen = e => { if (e.lastEventId) lastEventId = e.lastEventId; };
  current.addEventListener("open", () => { status.textContent = "live"; status.className = "live"; });
  current.addEventListener("error", () => {
    status.textContent = "reconnecting…"; status.className = "down";
    // The browser reconnects by itself unless the server answered with an error (a 503 while Redis is down):
    // then it gives up, and the page opens a new stream from the last change itself.
    if (current.readyState === EventSource.CLOSED) setTimeout(() => { if (source === current) connect(); }, 2000);
  });
  current.addEventListener("snapshot", e => onSnapshot(JSON.parse(e.data)));
  current.addEventListener("price", e => {
    seen(e); const u = JSON.parse(e.data); showPrice(u.symbol, u.bid, u.ask, u.price, u.timestamp);
  });
  current.addEventListener("pnl", e => {
    seen(e); const u = JSON.parse(e.data); accountTotal = u.total_unrealized; showPosition(u);
  });
  current.addEventListener("gap", () => {
    // Changes were lost past the streams' cap: start over from a snapshot (charts refill from the history).
    current.close(); lastEventId = null; connect();
  });
}
const tokenInput = document.getElementById("token");
tokenInput.value = sessionStorage.getItem("tickwire-token") || "";
tokenInput.addEventListener("change", () => sessionStorage.setItem("tickwire-token", tokenInput.value));
async function send(method, url, body, resultId, describe) {
  const result = document.getElementById(resultId);
  result.className = "result"; result.textContent = "sending…";
  const headers = {"Content-Type": "application/json"};
  if (tokenInput.value) headers["Authorization"] = "Bearer " + tokenInput.value;
  try {
    const response = await fetch(url, {method, headers, body: JSON.stringify(body)});
    const answer = await response.json().catch(() => ({}));
    result.className = "result " + (response.ok ? "ok" : "error");
    result.textContent = response.ok ? describe(answer) : (answer.detail || ("HTTP " + response.status));
    return response.ok;
  } catch (e) {
    result.className = "result error"; result.textContent = "the API did not answer: " + e; return false;
  }
}
document.getElementById("subscribe-form").addEventListener("submit", async e => {
  e.preventDefault();
  const form = e.target, symbol = form.symbol.value.trim().toUpperCase();
  if (await send("POST", "api/v1/subscribe", {symbols: [symbol]}, "subscribe-result",
                 a => a.message + " (prices appear once the ingest streams it)")) form.reset();
});
document.getElementById("position-form").addEventListener("submit", async e => {
  e.preventDefault();
  const form = e.target, symbol = form.symbol.value.trim().toUpperCase();
  const body = {qty: form.qty.value.trim(), avg_entry_price: form.avg_entry_price.value.trim(),
                account: account};
  if (await send("PUT", "api/v1/positions/" + encodeURIComponent(symbol), body, "position-result",
                 a => a.message)) form.reset();
});
showTotals(); showEmpty("prices"); showEmpty("positions");
connect();
</script>
</body>
</html>
"""
