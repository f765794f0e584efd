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
  header { display:flex; align-items:baseline; gap:1.5rem; padding:.8rem 1.2rem; border-bottom:1px solid var(--line); }
  header h1 { font-size:1.1rem; margin:0; }
  #connection { font-size:.85rem; color:var(--dim); }
  #connection.live { color:var(--up); } #connection.down { color:var(--down); }
  main { display:grid; grid-template-columns:repeat(auto-fit,minmax(32rem,1fr)); gap:1rem; padding:1rem 1.2rem; }
  section { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:.6rem .8rem; }
  h2 { font-size:.95rem; margin:.2rem 0 .6rem; color:var(--dim); font-weight:600; }
  table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
  th, td { padding:.3rem .45rem; text-align:right; border-bottom:1px solid var(--line); white-space:nowrap; }
  th:first-child, td:first-child { text-align:left; }
  th { color:var(--dim); font-weight:500; font-size:.8rem; }
  td.symbol { font-weight:600; }
  .up { color:var(--up); } .down { color:var(--down); } .dim { color:var(--dim); }
  .flash { animation: flash .6s ease-out; }
  @keyframes flash { from { background:#2d3a4a; } to { background:transparent; } }
  svg.spark { width:140px; height:28px; vertical-align:middle; }
  svg.spark polyline { fill:none; stroke:var(--accent); stroke-width:1.5; }
  #total { font-size:1.2rem; font-weight:600; }
  .empty { color:var(--dim); padding:.6rem .45rem; }
</style>
</head>
<body>
<header>
  <h1>tickwire</h1>
  <span>account <strong id="account"></strong></span>
  <span>total unrealized P&amp;L <span id="total" data-field="total">—</span></span>
  <span id="connection" class="down">connecting…</span>
</header>
<main>
  <section>
    <h2>Live prices</h2>
    <table id="prices">
      <thead><tr><th>Symbol</th><th>Bid</th><th>Ask</th><th>Mid</th><th>Chart</th><th>Exchange time</th></tr></thead>
      <tbody></tbody>
    </table>
    <div class="empty" id="prices-empty">no prices yet</div>
  </section>
  <section>
    <h2>Positions and unrealized P&amp;L</h2>
    <table id="positions">
      <thead><tr><th>Symbol</th><th>Qty</th><th>Avg entry</th><th>Mark</th><th>Source</th>
        <th>Unrealized P&amp;L</th></tr></thead>
      <tbody></tbody>
    </table>
    <div class="empty" id="positions-empty">no open positions</div>
  </section>
</main>
<script>
"use strict";
const HISTORY = 120;  // points per sparkline
const params = new URLSearchParams(location.search);
const account = params.get("account") || "default";
document.getElementById("account").textContent = account;
const history = new Map();  // symbol -> [mid numbers]

function signClass(text) {
  if (text === null || text === undefined) return "dim";
  return text.startsWith("-") ? "down" : (/^0(\.0+)?$/.test(text) ? "" : "up");
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
    const rows = [...body.children];
    const before = rows.find(r => r.dataset.symbol > symbol);
    body.insertBefore(row, before || null);
  }
  document.getElementById(tableId + "-empty").hidden = body.children.length > 0;
  return row;
}
function drawChart(row, symbol) {
  const points = history.get(symbol) || [];
  const line = row.querySelector("polyline");
  if (!line || points.length === 0) return;
  const lo = Math.min(...points), hi = Math.max(...points), span = hi - lo || 1;
  const step = points.length > 1 ? 140 / (points.length - 1) : 0;
  line.setAttribute("points", points.map((p, i) =>
    (i * step).toFixed(1) + "," + (26 - ((p - lo) / span) * 24).toFixed(1)).join(" "));
  row.querySelector("svg").dataset.points = String(points.length);
}
const PRICE_FIELDS = ["symbol", "bid", "ask", "mid", "chart", "timestamp"];
function showPrice(symbol, bid, ask, mid, timestamp) {
  const row = ensureRow("prices", symbol, PRICE_FIELDS);
  const points = history.get(symbol) || [];
  points.push(Number(mid)); if (points.length > HISTORY) points.shift();
  history.set(symbol, points);
  setText(cell(row, "bid"), bid); setText(cell(row, "ask"), ask); setText(cell(row, "mid"), mid);
  setText(cell(row, "timestamp"), timestamp ? timestamp.replace("T", " ").slice(0, 23) : null);
  drawChart(row, symbol);
}
const POSITION_FIELDS = ["symbol", "qty", "avg_entry_price", "mark_price", "price_source", "unrealized_pnl"];
function showPosition(p) {
  const body = document.querySelector("#positions tbody");
  if (p.qty === "0" || Number(p.qty) === 0) {
    const row = body.querySelector('tr[data-symbol="' + CSS.escape(p.symbol) + '"]');
    if (row) row.remove();
    document.getElementById("positions-empty").hidden = body.children.length > 0;
    return;
  }
  const row = ensureRow("positions", p.symbol, POSITION_FIELDS);
  setText(cell(row, "qty"), p.qty);
  if (p.avg_entry_price !== undefined) setText(cell(row, "avg_entry_price"), p.avg_entry_price);
  setText(cell(row, "mark_price"), p.mark_price);
  setText(cell(row, "price_source"), p.price_source);
  setText(cell(row, "unrealized_pnl"), p.unrealized_pnl, signClass(p.unrealized_pnl));
}
function showTotal(total) {
  setText(document.getElementById("total"), total, signClass(total));
}
function onSnapshot(snap) {
  for (const id of ["prices", "positions"]) document.querySelector("#" + id + " tbody").replaceChildren();
  for (const [symbol, p] of Object.entries(snap.prices)) showPrice(symbol, p.bid, p.ask, p.mid, p.timestamp);
  for (const p of Object.values(snap.pnl)) showPosition(p);
  showTotal(snap.total ? snap.total.total_unrealized : (Object.keys(snap.pnl).length ? null : "0.00"));
  document.getElementById("prices-empty").hidden = Object.keys(snap.prices).length > 0;
  document.getElementById("positions-empty").hidden = Object.keys(snap.pnl).length > 0;
}
function connect() {
  const status = document.getElementById("connection");
  const source = new EventSource("api/v1/stream?account=" + encodeURIComponent(account));
  source.addEventListener("open", () => { status.textContent = "live"; status.className = "live"; });
  source.addEventListener("error", () => { status.textContent = "reconnecting…"; status.className = "down"; });
  source.addEventListener("snapshot", e => onSnapshot(JSON.parse(e.data)));
  source.addEventListener("price", e => {
    const u = JSON.parse(e.data); showPrice(u.symbol, u.bid, u.ask, u.price, u.timestamp);
  });
  source.addEventListener("pnl", e => {
    const u = JSON.parse(e.data); showPosition(u); showTotal(u.total_unrealized);
  });
}
connect();
</script>
</body>
</html>
"""
