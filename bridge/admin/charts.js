// The page's charts: inline SVG drawn from the figures embedded in the page (#chart-data),
// no outside script or font, so the page works offline. One line chart per figure; the
// range buttons switch between the last hour (per minute) and the last day (per 10 minutes).
(function () {
  var data = JSON.parse(document.getElementById('chart-data').textContent);
  var box = document.getElementById('charts');
  var NS = 'http://www.w3.org/2000/svg';
  var COLORS = ['#2457d6', '#1a7f37', '#b42318', '#8a5a00', '#6e40c9', '#0e7490', '#9d174d', '#4b5563'];

  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function labelTime(ms, withDay) {
    var d = new Date(ms);
    var hm = ('0' + d.getUTCHours()).slice(-2) + ':' + ('0' + d.getUTCMinutes()).slice(-2);
    return withDay ? (d.getUTCMonth() + 1) + '/' + d.getUTCDate() + ' ' + hm : hm;
  }

  function chart(id, title, slots, lines, unit) {
    var W = 400, H = 170, L = 40, B = 22, T = 10;
    var max = 0;
    lines.forEach(function (l) { l.values.forEach(function (v) { if (v !== null && v > max) max = v; }); });
    max = max || 1;
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': title, id: id });
    var x = function (i) { return L + (W - L - 8) * (slots.length > 1 ? i / (slots.length - 1) : 0); };
    var y = function (v) { return T + (H - T - B) * (1 - v / max); };
    [0, 0.5, 1].forEach(function (f) {
      svg.appendChild(el('line', { x1: L, x2: W - 8, y1: y(max * f), y2: y(max * f), class: 'grid' }));
      svg.appendChild(el('text', { x: L - 4, y: y(max * f) + 4, 'text-anchor': 'end' },
        (Math.round(max * f * 10) / 10) + (f === 1 && unit ? ' ' + unit : '')));
    });
    [[0, 'start'], [Math.floor(slots.length / 2), 'middle'], [slots.length - 1, 'end']].forEach(function (p) {
      var i = p[0];
      if (slots[i]) svg.appendChild(el('text', { x: x(i), y: H - 6, 'text-anchor': p[1] },
        labelTime(slots[i].t, data.range === '24h')));
    });
    lines.forEach(function (l, n) {
      var d = '';
      l.values.forEach(function (v, i) {
        if (v === null) return;
        d += (d && l.values[i - 1] !== null ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(v).toFixed(1);
      });
      if (d) svg.appendChild(el('path', { d: d, stroke: COLORS[n % COLORS.length], class: 'series' }));
      l.values.forEach(function (v, i) {  // a point with no neighbour draws no line: a dot
        var alone = (i === 0 || l.values[i - 1] === null) && (i === l.values.length - 1 || l.values[i + 1] === null);
        if (v !== null && alone) {
          svg.appendChild(el('circle', { cx: x(i), cy: y(v), r: 3, fill: COLORS[n % COLORS.length] }));
        }
      });
    });
    var fig = document.createElement('figure');
    var cap = document.createElement('figcaption');
    cap.textContent = title;
    fig.appendChild(cap);
    fig.appendChild(svg);
    var legend = document.createElement('p');
    legend.className = 'legend';
    lines.forEach(function (l, n) {
      var s = document.createElement('span');
      s.style.setProperty('--c', COLORS[n % COLORS.length]);
      s.textContent = l.label;
      legend.appendChild(s);
    });
    if (!lines.length) legend.textContent = 'nothing yet';
    fig.appendChild(legend);
    return fig;
  }

  function keyed(slots, pick) {
    var names = {};
    slots.forEach(function (s) { Object.keys(pick(s)).forEach(function (k) { names[k] = 1; }); });
    return Object.keys(names).sort().map(function (k) {
      return { label: k, values: slots.map(function (s) { return pick(s)[k] || 0; }) };
    });
  }

  function draw(range) {
    data.range = range;
    var slots = data[range];
    box.textContent = '';
    box.appendChild(chart('chart-webhooks', 'Webhooks by source and verdict', slots,
      keyed(slots, function (s) { return s.webhooks; })));
    box.appendChild(chart('chart-patches', 'PATCHes by outcome', slots,
      keyed(slots, function (s) { return s.patches; })));
    box.appendChild(chart('chart-latency', 'Webhook → PATCH (ms)', slots, [
      { label: 'p50', values: slots.map(function (s) { return s.p50_ms; }) },
      { label: 'p99', values: slots.map(function (s) { return s.p99_ms; }) }
    ], 'ms'));
    box.appendChild(chart('chart-queue', 'Queue depth', slots,
      [{ label: 'conversations', values: slots.map(function (s) { return s.queue_depth; }) }]));
    box.appendChild(chart('chart-dead', 'Dead letters', slots,
      [{ label: 'dead letters', values: slots.map(function (s) { return s.dead_letters; }) }]));
    document.querySelectorAll('[data-range]').forEach(function (b) {
      b.setAttribute('aria-pressed', b.getAttribute('data-range') === range ? 'true' : 'false');
    });
  }

  document.querySelectorAll('[data-range]').forEach(function (b) {
    b.addEventListener('click', function () { draw(b.getAttribute('data-range')); });
  });
  draw('1h');
})();
