/**
 * The live status page, served whole (HTML, CSS and a little script: no library, no CDN, so it works
 * offline). The script reads /v1/admin/status/data every second and draws the rates itself; every
 * value it shows is set as text, never as HTML. Lookups and resets use the admin API beside it.
 */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Floodgate: rate limiter status</title>
<style>
  :root { --ok: #1e8e3e; --bad: #c5221f; --shadow: #e37400; --ink: #1d2330; --muted: #5f6673; --line: #dde0e6; }
  * { box-sizing: border-box; }
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: var(--ink); background: #f4f5f7; }
  header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; padding: .75rem 1rem; background: #fff; border-bottom: 1px solid var(--line); }
  header h1 { font-size: 1.1rem; margin: 0; flex: 1 1 auto; }
  main { display: grid; gap: 1rem; padding: 1rem; grid-template-columns: repeat(auto-fit, minmax(min(100%, 26rem), 1fr)); max-width: 80rem; margin: 0 auto; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 1rem; min-width: 0; }
  h2 { font-size: 1rem; margin: 0 0 .75rem; }
  .tiles { display: flex; flex-wrap: wrap; gap: .5rem; }
  .tile { flex: 1 1 7rem; border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; }
  .tile b { display: block; font-size: 1.3rem; }
  .tile span { color: var(--muted); font-size: .85rem; }
  .badge { padding: .1rem .5rem; border-radius: 999px; color: #fff; font-size: .85rem; background: var(--ok); }
  .badge.open { background: var(--bad); } .badge.half_open { background: var(--shadow); }
  svg { width: 100%; height: 180px; display: block; border-bottom: 1px solid var(--line); }
  .legend { display: flex; flex-wrap: wrap; gap: 1rem; font-size: .85rem; color: var(--muted); margin-top: .5rem; }
  .legend i { display: inline-block; width: 1rem; height: 3px; vertical-align: middle; margin-right: .3rem; }
  table { width: 100%; border-collapse: collapse; font-size: .9rem; }
  th, td { text-align: left; padding: .3rem .4rem; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
  th { color: var(--muted); font-weight: 600; overflow-wrap: normal; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
  label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); flex: 1 1 9rem; }
  input, select, button { font: inherit; padding: .4rem .5rem; border: 1px solid #c4c8d0; border-radius: 4px; }
  button { background: #2457d6; color: #fff; border: 0; cursor: pointer; }
  button.danger { background: var(--bad); } button.plain { background: #fff; color: var(--ink); border: 1px solid #c4c8d0; }
  .note { color: var(--muted); font-size: .85rem; }
  .message { margin: .5rem 0 0; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<header>
  <h1>Floodgate rate limiter</h1>
  <span>Backend: <b id="backend">…</b></span>
  <span>Redis breaker: <span id="breaker" class="badge">…</span></span>
  <form method="post" action="/v1/admin/logout"><button class="plain" type="submit">Sign out</button></form>
</header>
<main>
  <section aria-labelledby="now-title">
    <h2 id="now-title">Now</h2>
    <div class="tiles">
      <div class="tile"><b id="admitted-rate">0</b><span>admitted / s</span></div>
      <div class="tile"><b id="refused-rate">0</b><span>refused / s</span></div>
      <div class="tile"><b id="shadow-rate">0</b><span>shadow refusals / s</span></div>
      <div class="tile"><b id="latency">–</b><span>decision time (mean)</span></div>
      <div class="tile"><b id="keys">0</b><span>keys held</span></div>
      <div class="tile"><b id="refused-total">0</b><span>refused since start</span></div>
      <div class="tile"><b id="blocks-started">0</b><span>blocks started</span></div>
      <div class="tile"><b id="blocks-held">0</b><span>blocks held here</span></div>
    </div>
  </section>
  <section aria-labelledby="chart-title">
    <h2 id="chart-title">Decisions per second, last two minutes</h2>
    <svg id="chart" viewBox="0 0 120 100" preserveAspectRatio="none" role="img" aria-label="Decisions per second">
      <polyline id="admitted-line" fill="none" stroke="var(--ok)" stroke-width="1.5" vector-effect="non-scaling-stroke" points=""></polyline>
      <polyline id="refused-line" fill="none" stroke="var(--bad)" stroke-width="1.5" vector-effect="non-scaling-stroke" points=""></polyline>
      <polyline id="shadow-line" fill="none" stroke="var(--shadow)" stroke-width="1.5" stroke-dasharray="4 3" vector-effect="non-scaling-stroke" points=""></polyline>
    </svg>
    <div class="legend">
      <span><i style="background:var(--ok)"></i>admitted</span>
      <span><i style="background:var(--bad)"></i>refused</span>
      <span><i style="background:var(--shadow)"></i>shadow rules would refuse</span>
      <span>peak <b id="chart-peak">0</b>/s</span>
    </div>
  </section>
  <section aria-labelledby="rules-title">
    <h2 id="rules-title">Refusals by rule</h2>
    <table>
      <thead><tr><th>Rule</th><th class="num">refused / s</th><th class="num">shadow / s</th><th class="num">refused in all</th></tr></thead>
      <tbody id="rules"><tr><td colspan="4" class="note">No refusals yet.</td></tr></tbody>
    </table>
  </section>
  <section aria-labelledby="top-title">
    <h2 id="top-title">Most limited, last ten minutes</h2>
    <p class="note">Shown by salted hash only: the same subject always has the same hash on this gateway.</p>
    <table>
      <thead><tr><th>Subject</th><th class="num">refusals</th></tr></thead>
      <tbody id="top"><tr><td colspan="2" class="note">Nobody has been refused.</td></tr></tbody>
    </table>
  </section>
  <section aria-labelledby="lookup-title">
    <h2 id="lookup-title">Look up a user</h2>
    <form id="lookup-form">
      <label>Channel<select id="lookup-channel"><option>http</option><option>cli</option><option>telegram</option><option>discord</option></select></label>
      <label>User id<input id="lookup-user" required maxlength="256" autocomplete="off"></label>
      <label>Tenant id (optional)<input id="lookup-tenant" maxlength="256" autocomplete="off"></label>
      <button type="submit">Look up</button>
    </form>
    <div id="lookup-result" hidden>
      <p id="lookup-stale" class="note" hidden>Redis cannot be reached: these are this gateway's own counts.</p>
      <table>
        <thead><tr><th>Window</th><th>Limit</th><th class="num">used</th><th class="num">remaining</th><th class="num">full again in</th></tr></thead>
        <tbody id="lookup-rules"></tbody>
      </table>
      <p>
        <button id="reset-button" class="danger" type="button">Reset this user…</button>
        <span id="reset-confirm" hidden>Reset every count of this user? <button id="reset-yes" class="danger" type="button">Yes, reset</button> <button id="reset-no" class="plain" type="button">Cancel</button></span>
      </p>
    </div>
    <p id="lookup-message" class="message" role="status"></p>
  </section>
</main>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  const history = [];
  let last;
  const fmt = (n) => (n >= 100 ? Math.round(n) : Math.round(n * 10) / 10).toLocaleString('en-US');
  // A request refused by an escalating block is refused too.
  const is = (r, outcome) => r.outcome === outcome || (outcome === 'refused' && r.outcome === 'blocked');
  const sum = (rows, outcome) => rows.filter((r) => is(r, outcome)).reduce((a, r) => a + r.count, 0);
  const row = (cells) => { const tr = document.createElement('tr'); for (const [text, num] of cells) { const td = document.createElement('td'); td.textContent = text; if (num) td.className = 'num'; tr.append(td); } return tr; };
  const fill = (body, rows, empty, span) => { body.replaceChildren(...(rows.length ? rows : [row([[empty]])])); if (!rows.length) { body.firstChild.firstChild.colSpan = span; body.firstChild.firstChild.className = 'note'; } };
  const duration = (s) => (s <= 0 ? 'now' : s < 120 ? s + ' s' : s < 7200 ? Math.ceil(s / 60) + ' min' : s < 172800 ? Math.ceil(s / 3600) + ' h' : Math.ceil(s / 86400) + ' d');

  function draw() {
    const peak = Math.max(1, ...history.flatMap((h) => [h.admitted, h.refused, h.shadow]));
    $('chart-peak').textContent = fmt(peak);
    for (const key of ['admitted', 'refused', 'shadow']) {
      const points = history.map((h, i) => (120 - (history.length - 1 - i)) + ',' + (100 - (h[key] / peak) * 96).toFixed(2));
      $(key + '-line').setAttribute('points', points.join(' '));
    }
  }

  function show(now) {
    $('backend').textContent = now.backend;
    const breaker = $('breaker');
    breaker.textContent = now.breaker.replace('_', '-');
    breaker.className = 'badge ' + now.breaker;
    $('keys').textContent = fmt(now.keys);
    $('blocks-started').textContent = now.blocks_started.toLocaleString('en-US');
    $('blocks-held').textContent = fmt(now.blocks);
    $('refused-total').textContent = sum(now.decisions, 'refused').toLocaleString('en-US');
    fill($('top'), now.top_subjects.map((t) => row([[t.subject], [t.refusals.toLocaleString('en-US'), true]])), 'Nobody has been refused.', 2);
    if (last) {
      const seconds = Math.max(0.001, (now.at - last.at) / 1000);
      const rate = (outcome) => Math.max(0, sum(now.decisions, outcome) - sum(last.decisions, outcome)) / seconds;
      const point = { admitted: rate('admitted'), refused: rate('refused'), shadow: rate('shadow_refused') };
      history.push(point);
      if (history.length > 120) history.shift();
      $('admitted-rate').textContent = fmt(point.admitted);
      $('refused-rate').textContent = fmt(point.refused);
      $('shadow-rate').textContent = fmt(point.shadow);
      const n = now.latency.count - last.latency.count;
      if (n > 0) $('latency').textContent = (((now.latency.sum_seconds - last.latency.sum_seconds) / n) * 1000).toFixed(3) + ' ms';
      const rules = [...new Set(now.decisions.filter((d) => d.outcome !== 'admitted' && d.rule !== 'none').map((d) => d.rule))].sort();
      const count = (snap, rule, outcome) => snap.decisions.filter((d) => d.rule === rule && is(d, outcome)).reduce((a, d) => a + d.count, 0);
      fill($('rules'), rules.map((rule) => row([
        [rule],
        [fmt(Math.max(0, count(now, rule, 'refused') - count(last, rule, 'refused')) / seconds), true],
        [fmt(Math.max(0, count(now, rule, 'shadow_refused') - count(last, rule, 'shadow_refused')) / seconds), true],
        [count(now, rule, 'refused').toLocaleString('en-US'), true],
      ])), 'No refusals yet.', 4);
      draw();
    }
    last = now;
  }

  async function refresh() {
    try {
      const response = await fetch('/v1/admin/status/data', { headers: { accept: 'application/json' }, cache: 'no-store' });
      if (response.status === 401) { location.href = '/v1/admin/login?next=%2Fv1%2Fadmin%2Fstatus'; return; }
      if (response.ok) show(await response.json());
    } catch { /* the next tick tries again */ }
  }
  refresh();
  setInterval(refresh, 1000);

  let asked;
  const message = (text) => { $('lookup-message').textContent = text; };
  async function lookup(query) {
    const params = new URLSearchParams(query);
    const response = await fetch('/v1/admin/limits?' + params, { headers: { accept: 'application/json' }, cache: 'no-store' });
    const body = await response.json();
    if (!response.ok) { message(body.message || 'The lookup failed.'); return; }
    asked = query;
    $('lookup-stale').hidden = !body.backend_unavailable;
    const rows = body.rules.map((r) => row([[r.rule + (r.shadow ? ' (shadow)' : '')], [r.limit + (r.unit === 'tokens' ? ' tokens' : '')], [String(r.used), true], [String(r.remaining), true], [duration(r.reset_after), true]]));
    for (const b of body.blocks || []) rows.push(row([[b.rule + ' block'], [b.blocked ? 'blocked, level ' + b.level : 'not blocked' + (b.level ? ', level ' + b.level : '')], [String(b.strikes) + ' strikes', true], ['', true], [b.blocked ? duration(b.retry_after) : '', true]]));
    for (const c of body.concurrency) rows.push(row([[c.rule], [c.max_concurrent + ' at once'], [String(c.in_flight), true], [String(Math.max(0, c.max_concurrent - c.in_flight)), true], ['', true]]));
    fill($('lookup-rules'), rows, 'No rule applies.', 5);
    $('lookup-result').hidden = false;
  }
  $('lookup-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    message('');
    $('reset-confirm').hidden = true;
    const query = { channel: $('lookup-channel').value, user_id: $('lookup-user').value };
    if ($('lookup-tenant').value) query.tenant_id = $('lookup-tenant').value;
    await lookup(query);
  });
  $('reset-button').addEventListener('click', () => { $('reset-confirm').hidden = false; });
  $('reset-no').addEventListener('click', () => { $('reset-confirm').hidden = true; });
  $('reset-yes').addEventListener('click', async () => {
    $('reset-confirm').hidden = true;
    const response = await fetch('/v1/admin/limits/reset', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(asked) });
    const body = await response.json();
    if (!response.ok) { message(body.message || 'The reset failed.'); return; }
    await lookup(asked);
    message('Reset: ' + body.keys_removed + ' keys removed. The user is admitted again.');
  });
})();
</script>
</body>
</html>
`;
