// stoke's HTML report: the call tree, a flamegraph and per-thread
// timelines (with the target's RSS and CPU when recorded), drawn from the
// JSON in #stoke-data. Every name from the profile reaches the page through
// textContent or a canvas, never as markup. No network access: all is inline.
'use strict';
(function () {
  const D = JSON.parse(document.getElementById('stoke-data').textContent);
  const $ = (id) => document.getElementById(id);
  const N = D.nodes.length / 4;
  const parent = new Int32Array(N), nameOf = new Int32Array(N);
  const value = new Float64Array(N), self = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    parent[i] = D.nodes[4 * i]; nameOf[i] = D.nodes[4 * i + 1];
    value[i] = D.nodes[4 * i + 2]; self[i] = D.nodes[4 * i + 3];
  }
  const name = (i) => D.names[nameOf[i]];
  const kids = [];
  for (let i = 0; i < N; i++) kids.push([]);
  for (let i = 1; i < N; i++) kids[parent[i]].push(i);
  // Children come heaviest first, ties by name: the writer's order.
  const total = value[0] || 1;
  const share = (v) => 100 * v / total;
  const pct = (v) => share(v).toFixed(1) + '%';
  const secs = (v) => D.period_ns ? (v * D.period_ns / 1e9).toFixed(3) + 's' : v + ' samples';
  const pclass = (v) => { const s = share(v); return s >= 60 ? 'p60' : s >= 30 ? 'p30' : s >= 20 ? 'p20' : 'p0'; };
  function hue(s) { let h = 0; for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0; return Math.abs(h) % 360; }
  const colour = (s) => 'hsl(' + hue(s) + ',65%,72%)';
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const mb = (b) => (b / 1048576).toFixed(1) + ' MB';

  // ---- header ----
  $('title').textContent = 'stoke: ' + (D.cmd || '(unknown command)');
  document.title = 'stoke: ' + (D.cmd || 'profile');
  let sum = D.total + ' samples of ' + (D.event || '?');
  if (D.frequency) sum += ' at ' + D.frequency + ' Hz';
  sum += ', ' + D.duration_s.toFixed(3) + ' s, ' + D.lost + ' lost, ' + D.nthreads + ' threads';
  if (D.resources) sum += '; peak RSS ' + mb(D.resources.peak_rss) + ', mean RSS ' + mb(D.resources.mean_rss) +
    ', CPU ' + (100 * D.resources.cpu_util).toFixed(0) + '% of a core (peak ' + (100 * D.resources.peak_cpu).toFixed(0) + '%)';
  $('summary').textContent = sum;

  // ---- call tree: rows made when their parent is first expanded ----
  const rows = new Array(N), boxes = new Array(N), togs = new Array(N), filled = new Uint8Array(N);
  const open = new Uint8Array(N);
  function makeRow(i) {
    const wrap = el('div', 'node');
    const row = el('div', 'row');
    row.setAttribute('role', 'treeitem');
    row.dataset.id = i;
    const tog = el('span', 'tog', kids[i].length ? '\u25b8' : '\u00b7');
    row.append(tog, el('span', 'time', secs(value[i])), el('span', 'pct ' + pclass(value[i]), pct(value[i])),
      el('span', 'name', name(i)));
    if (self[i] && kids[i].length) row.append(el('span', 'self', 'self ' + pct(self[i])));
    wrap.append(row);
    rows[i] = row; togs[i] = tog;
    if (kids[i].length) {
      const box = el('div', 'kids');
      box.style.display = 'none';
      boxes[i] = box;
      wrap.append(box);
      tog.addEventListener('click', () => (open[i] ? collapse(i) : expand(i)));
      row.addEventListener('dblclick', () => (open[i] ? collapse(i) : expand(i)));
    }
    return wrap;
  }
  boxes[0] = $('calltree');
  function fill(i) {
    if (filled[i]) return;
    filled[i] = 1;
    for (const k of kids[i]) if (value[k] > 0) boxes[i].append(makeRow(k));
  }
  function expand(i) {
    if (!boxes[i]) return;
    fill(i);
    open[i] = 1;
    boxes[i].style.display = '';
    if (togs[i]) togs[i].textContent = '\u25be';
  }
  function collapse(i) {
    if (!boxes[i] || i === 0) return;
    open[i] = 0;
    boxes[i].style.display = 'none';
    togs[i].textContent = '\u25b8';
  }
  function expandHot(pctMin) {
    const stack = [0];
    while (stack.length) {
      const i = stack.pop();
      expand(i);
      for (const k of kids[i]) if (kids[k].length && share(value[k]) >= pctMin) stack.push(k);
    }
  }
  expandHot(5);
  $('expand-all').addEventListener('click', () => expandHot(1));
  $('collapse-all').addEventListener('click', () => { for (let i = 1; i < N; i++) if (open[i]) collapse(i); });

  // ---- search: highlight every match, open the way to it ----
  let marked = [];
  function search(q) {
    for (const i of marked) { if (rows[i]) rows[i].classList.remove('match'); }
    marked = [];
    flameHits(null);
    if (!q) { $('search-count').textContent = ''; return; }
    const ql = q.toLowerCase();
    const hit = new Uint8Array(N);
    let covered = 0;
    for (let i = 1; i < N; i++) {
      if (!name(i).toLowerCase().includes(ql)) continue;
      hit[i] = 1;
      marked.push(i);
      let a = parent[i];
      while (a && !hit[a]) a = parent[a];
      if (!a) covered += value[i];
    }
    // Open the way to the heaviest matches (all of them could be many).
    const shown = marked.slice().sort((a, b) => value[b] - value[a]).slice(0, 200);
    for (const i of shown) {
      const chain = [];
      for (let a = parent[i]; a; a = parent[a]) chain.push(a);
      expand(0);
      for (let j = chain.length - 1; j >= 0; j--) expand(chain[j]);
    }
    for (const i of marked) if (rows[i]) rows[i].classList.add('match');
    $('search-count').textContent = marked.length + ' match' + (marked.length === 1 ? '' : 'es') +
      (marked.length ? ', ' + pct(covered) + ' of samples' : '');
    if (shown.length && rows[shown[0]]) rows[shown[0]].scrollIntoView({ block: 'nearest' });
    flameHits(hit);
  }
  $('search').addEventListener('input', (e) => search(e.target.value));

  // ---- flamegraph (root at the top), click to zoom ----
  const x0 = new Float64Array(N), depth = new Int32Array(N);
  let maxDepth = 0;
  (function layout() {
    const stack = [0];
    while (stack.length) {
      const i = stack.pop();
      let x = x0[i];
      for (const k of kids[i]) {
        x0[k] = x; x += value[k];
        depth[k] = depth[i] + 1;
        if (depth[k] > maxDepth) maxDepth = depth[k];
        stack.push(k);
      }
    }
  })();
  let zoom = 0, lastHit = null;
  const boxesF = [];
  function drawFlame() {
    const f = $('flame');
    f.textContent = '';
    boxesF.length = 0;
    const W = f.clientWidth || 1000, H = 16;
    const zx = x0[zoom], zw = value[zoom] || 1, zd = depth[zoom];
    let rowsUsed = 0;
    const anc = new Set();
    for (let a = zoom; a; a = parent[a]) anc.add(a);
    const stack = [0];
    while (stack.length) {
      const i = stack.pop();
      let left, width;
      if (anc.has(i) || i === 0) { left = 0; width = W; } else {
        left = (x0[i] - zx) / zw * W; width = value[i] / zw * W;
      }
      if (i !== 0 && (width < 1 || left + width <= 0 || left >= W)) continue;
      if (i !== 0) {
        const b = el('div', 'fb', width > 30 ? name(i) : '');
        b.style.left = left + 'px'; b.style.width = width + 'px';
        b.style.top = (depth[i] - 1) * H + 'px';
        b.style.background = colour(name(i));
        if (depth[i] < zd) b.classList.add('dim');
        b.title = name(i) + ' (' + secs(value[i]) + ', ' + pct(value[i]) + ')';
        b.dataset.id = i;
        b.addEventListener('click', () => { zoom = i; drawFlame(); });
        f.append(b);
        boxesF.push(b);
        if (depth[i] > rowsUsed) rowsUsed = depth[i];
      }
      for (const k of kids[i]) if (value[k] > 0) stack.push(k);
    }
    f.style.height = (rowsUsed * H + 4) + 'px';
    $('flame-info').textContent = zoom ? 'zoomed on ' + name(zoom) + ' (' + pct(value[zoom]) + ')' : '';
    flameHits(lastHit);
  }
  function flameHits(hit) {
    lastHit = hit;
    for (const b of boxesF) b.classList.toggle('hit', !!(hit && hit[+b.dataset.id]));
  }
  $('flame-reset').addEventListener('click', () => { zoom = 0; drawFlame(); });
  drawFlame();
  window.addEventListener('resize', () => { drawFlame(); drawTimelines(); });

  // ---- timelines: the resource chart, then one strip per thread ----
  const tip = $('tip');
  function showTip(e, text) {
    tip.textContent = text; tip.hidden = false;
    tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px';
  }
  function canvasFor(parentEl, label, hint) {
    const line = el('div', 'tl');
    const lab = el('span', 'lab', label);
    lab.title = label;
    const c = el('canvas');
    line.append(lab, c);
    parentEl.append(line);
    c.addEventListener('mouseleave', () => { tip.hidden = true; });
    c.addEventListener('mousemove', (e) => {
      const r = c.getBoundingClientRect();
      showTip(e, hint((e.clientX - r.left) / r.width));
    });
    return c;
  }
  function sized(c) {
    const r = c.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    c.width = Math.max(1, Math.round(r.width * dpr)); c.height = Math.max(1, Math.round(r.height * dpr));
    return c.getContext('2d');
  }
  const span = D.span_s > 0 ? D.span_s : 1;
  const strips = [];
  let resCanvas = null;
  if (D.resources && D.resources.t.length) {
    const R = D.resources;
    resCanvas = canvasFor($('resources'), 'RSS (blue), CPU (orange)', (fx) => {
      const t = fx * span;
      let j = 0;
      for (let k = 0; k < R.t.length; k++) if (R.t[k] <= t) j = k;
      return 't=' + R.t[j].toFixed(2) + 's: RSS ' + mb(R.rss[j]) + ', CPU ' + (100 * R.cpu[j]).toFixed(0) + '%';
    });
  } else {
    $('resources').append(el('div', 'note', 'No resource timeline in this profile (recorded by stoke record).'));
  }
  const threads = D.threads.slice().sort((a, b) => b.samples - a.samples);
  const maxThreads = 64;
  for (const th of threads.slice(0, maxThreads)) {
    const label = (th.name || '?') + ' ' + th.pid + '/' + th.tid;
    const c = canvasFor($('timelines'), label, (fx) => {
      const b = Math.min(D.bins - 1, Math.max(0, Math.floor(fx * span / D.bin_s)));
      const w = th.w[b] || 0;
      return label + ' t=' + (b * D.bin_s).toFixed(2) + 's: ' + secs(w) +
        (th.top[b] >= 0 ? ', mostly in ' + D.names[th.top[b]] : '');
    });
    strips.push([c, th]);
  }
  if (D.nthreads > Math.min(maxThreads, threads.length))
    $('timelines').append(el('div', 'note', (D.nthreads - Math.min(maxThreads, threads.length)) +
      ' more threads with fewer samples not shown'));
  function drawTimelines() {
    const binW = D.bin_s / span;
    const full = D.period_ns ? D.bin_s * 1e9 / D.period_ns : 0;
    for (const [c, th] of strips) {
      const g = sized(c);
      let max = full;
      if (!max) for (const w of th.w) max = Math.max(max, w);
      for (let b = 0; b < D.bins; b++) {
        const w = th.w[b];
        if (!w) continue;
        g.fillStyle = th.top[b] >= 0 ? colour(D.names[th.top[b]]) : '#999';
        const h = Math.min(1, w / (max || 1)) * c.height;
        g.fillRect(b * binW * c.width, c.height - h, Math.max(1, binW * c.width), h);
      }
    }
    if (resCanvas) {
      const R = D.resources, g = sized(resCanvas), W = resCanvas.width, Hh = resCanvas.height;
      const peak = R.peak_rss || 1;
      let cmax = 1;
      for (const v of R.cpu) cmax = Math.max(cmax, v);
      const line = (vals, scale, style) => {
        g.strokeStyle = style; g.lineWidth = 2; g.beginPath();
        for (let k = 0; k < R.t.length; k++) {
          const x = R.t[k] / span * W, y = Hh - 2 - vals[k] / scale * (Hh - 4);
          if (k) g.lineTo(x, y); else g.moveTo(x, y);
        }
        g.stroke();
      };
      line(R.rss, peak, '#2e86c1');
      line(R.cpu, cmax, '#e67e22');
    }
  }
  drawTimelines();
  window.stokeReport = { search, expand, collapse, nodes: N };
})();
