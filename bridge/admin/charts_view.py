"""The main page's History section: the figures of bridge/charts.py embedded as JSON, drawn
as inline SVG by charts.js (no outside script, font or CDN: the page works offline)."""

from __future__ import annotations

from importlib.resources import files

import orjson

from bridge.charts import series
from bridge.store import Store

SCRIPT = files("bridge.admin").joinpath("charts.js").read_text(encoding="utf-8")


async def charts_html(store: Store, nonce: str) -> str:
    data = {name: [s.to_json() for s in await series(store, name)] for name in ("1h", "24h")}
    # JSON inside <script>: no "</script>" may appear, whatever a source is called
    embedded = orjson.dumps(data).decode().replace("<", "\\u003c")
    return (
        '<div class="ranges"><button type="button" data-range="1h" id="range-1h">Last hour'
        '</button><button type="button" data-range="24h" id="range-24h">Last 24 h</button>'
        '</div><div id="charts" class="charts"></div>'
        f'<script type="application/json" id="chart-data">{embedded}</script>'
        f'<script nonce="{nonce}">{SCRIPT}</script>'
    )
