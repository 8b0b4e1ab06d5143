"""The nightly report: one HTML page a supply-chain director reads in a minute.

`render(facts)` turns the night's figures (a plain dict that medlake/jobs/report.py collects from
gold and the system tables, and also writes as JSON) into a self-contained page: key figures,
inline SVG charts and short tables, labelled in English and Chinese. No script, no fonts or
styles from the network: the page opens the same offline, in a mail client or on a share.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

STATUS_COLOURS = {
    "ok": "#2e7d32",
    "warning": "#ef8f00",
    "critical": "#c62828",
    "no_data": "#9e9e9e",
}


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def fmt(value: float | None, unit: str) -> str:
    """A metric value as a reader wants it: ratios as percent, amounts in the group currency."""
    if value is None:
        return "–"
    if unit == "ratio":
        return f"{100 * value:.1f}%"
    if unit == "amount":
        return f"{value:,.0f}"
    if unit == "days":
        return f"{value:.1f} d"
    if unit == "rows":
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def bilingual(en: str, zh: str) -> str:
    return f'{esc(en)} <span class="zh">{esc(zh)}</span>'


def bar_chart(
    chart_id: str,
    bars: Sequence[tuple[str, float | None, str]],
    *,
    unit: str,
    target: float | None = None,
    width: int = 440,
) -> str:
    """Horizontal bars (label, value, status) as inline SVG; a dashed line marks `target`.

    Each bar is a `rect.bar` with its value in `data-value`, so a browser test can check the
    chart rendered with the numbers of the table it summarises."""
    label_w, value_w, row_h = 120, 70, 24
    plot_w = width - label_w - value_w
    values = [v for _, v, _ in bars if v is not None]
    top = max([*values, target or 0.0, 0.0]) or 1.0
    height = row_h * len(bars) + 8
    parts = [
        f'<svg class="chart" data-chart="{esc(chart_id)}" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (label, value, status) in enumerate(bars):
        y = 4 + i * row_h
        length = 0.0 if value is None else max(0.0, value) / top * plot_w
        colour = STATUS_COLOURS.get(status, "#1565c0")
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" class="axis">'
            f"{esc(label)}</text>"
            f'<rect class="bar" data-value="{"" if value is None else f"{value:.6g}"}" '
            f'x="{label_w}" y="{y + 3}" width="{max(length, 1.0):.1f}" height="{row_h - 8}" '
            f'fill="{colour}"><title>{esc(label)}: {esc(fmt(value, unit))}</title></rect>'
            f'<text x="{label_w + length + 4:.1f}" y="{y + 15}" class="value">'
            f"{esc(fmt(value, unit))}</text>"
        )
    if target is not None:
        x = label_w + target / top * plot_w
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}" class="target">'
            f"<title>target {esc(fmt(target, unit))}</title></line>"
        )
    parts.append("</svg>")
    return "".join(parts)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, css: str = "") -> str:
    """Cells are HTML already (escape values with `esc`)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def badge(status: str, text: str | None = None) -> str:
    return f'<span class="badge {esc(status)}">{esc(text or status)}</span>'


def _tiles(facts: dict[str, Any]) -> str:
    tiles = []
    for k in facts["kpis"]:
        tiles.append(
            f'<div class="tile {esc(k["status"])}" data-metric="{esc(k["metric_id"])}">'
            f'<div class="label">{bilingual(k["name_en"], k["name_zh"])}</div>'
            f'<div class="figure">{esc(fmt(k["value"], k["unit"]))}</div></div>'
        )
    q = facts["quality"]
    gate_status = "critical" if q["failed"] else ("warning" if q["warned"] else "ok")
    tiles.append(
        f'<div class="tile {gate_status}" data-metric="quality_gates">'
        f'<div class="label">{bilingual("Quality gates passed", "质量关卡通过")}</div>'
        f'<div class="figure">{q["passed"]} / {q["rules"]}</div></div>'
    )
    flagged = sum(1 for s in facts["suppliers"] if s["flags"])
    tiles.append(
        f'<div class="tile {"warning" if flagged else "ok"}" data-metric="suppliers_flagged">'
        f'<div class="label">{bilingual("Suppliers at risk", "风险供应商")}</div>'
        f'<div class="figure">{flagged}</div></div>'
    )
    return '<section class="tiles">' + "".join(tiles) + "</section>"


def _panorama(facts: dict[str, Any]) -> str:
    plants = facts["plants"]
    otd = facts["names"]["otd"]
    chart = bar_chart(
        "otd_by_plant",
        [(p["plant_id"], p["otd"], p["otd_status"]) for p in plants],
        unit="ratio",
        target=facts["targets"].get("otd"),
    )
    columns = facts["panorama_columns"]
    rows = [
        [esc(p["plant_id"]), esc(p["region"])]
        + [
            f'<span class="{esc(p.get(c["metric_id"] + "_status", ""))}">'
            f"{esc(fmt(p.get(c['metric_id']), c['unit']))}</span>"
            for c in columns
        ]
        for p in plants
    ]
    headers = ["Plant 工厂", "Region 区域"] + [
        bilingual(c["name_en"], c["name_zh"]) for c in columns
    ]
    return (
        f'<section class="card wide"><h2>{bilingual("Supply-chain panorama", "供应链全景")} '
        f"<small>{esc(facts['month'])}</small></h2>"
        f'<div class="row"><div><h3>{bilingual(otd["en"], otd["zh"])}</h3>{chart}</div>'
        f"<div>{table(headers, rows, css='numbers')}</div></div></section>"
    )


def _suppliers(facts: dict[str, Any]) -> str:
    suppliers = facts["suppliers"]
    chart = bar_chart(
        "supplier_composite",
        [(s["name"][:18], s["composite"], "critical" if s["flags"] else "ok") for s in suppliers],
        unit="score",
    )
    rows = [
        [
            esc(s["name"]),
            esc(s["category"]),
            esc(fmt(s["composite"], "score")),
            esc(f"{s['rank']} / {s['of']}" if s["rank"] else "–"),
            "<br>".join(
                f"{badge('critical', f)} {esc(r)}"
                for f, r in zip(s["flags"], s["reasons"], strict=True)
            )
            or badge("ok", "none"),
        ]
        for s in suppliers
    ]
    headers = [
        "Supplier 供应商",
        "Category 类别",
        "Score 综合得分",
        "Rank 排名",
        "Risk flags 风险标记",
    ]
    return (
        f'<section class="card wide"><h2>{bilingual("Supplier scorecard", "供应商记分卡")} '
        f"<small>{esc(facts['scorecard_window'])}, "
        f"{esc('lowest composite first')}</small></h2>"
        f'<div class="row"><div>{chart}</div><div>{table(headers, rows)}</div></div></section>'
    )


def _quality(facts: dict[str, Any]) -> str:
    q = facts["quality"]
    rows = [
        [
            esc(t["table"]),
            esc(t["rules"]),
            badge("ok", str(t["passed"])),
            badge("warning", str(t["warned"])) if t["warned"] else "0",
            badge("critical", str(t["failed"])) if t["failed"] else "0",
        ]
        for t in q["by_table"]
    ]
    failed = "".join(f"<li>{esc(r)}</li>" for r in q["failed_rules"])
    failed_block = (
        f'<p class="alert">{bilingual("Failed gates", "未通过的关卡")}:</p><ul>{failed}</ul>'
        if failed
        else f'<p class="okline">{bilingual("Every gate passed", "全部关卡通过")}</p>'
    )
    recon = q["reconciliation"]
    landed = bar_chart(
        "rows_landed",
        [(p["plant_id"], float(p["rows_ingested"]), "ok") for p in facts["landed"]],
        unit="rows",
    )
    return (
        f'<section class="card"><h2>{bilingual("Quality gates", "质量关卡")}</h2>'
        f"{failed_block}"
        + table(
            ["Table 表", "Rules 规则", "Passed 通过", "Warned 警告", "Failed 失败"],
            rows,
            css="numbers",
        )
        + f"<p>{bilingual('Reconciliation', '数据核对')}: {recon['balanced']} balanced, "
        f"{recon['unbalanced']} unbalanced; {esc(facts['audit']['message'])}</p></section>"
        f'<section class="card"><h2>{bilingual("Rows landed per plant", "各工厂入湖行数")}</h2>'
        f"{landed}</section>"
    )


def _costs(facts: dict[str, Any]) -> str:
    costs = facts["costs"]
    chart = bar_chart(
        "material_cost_change",
        [
            (f"{c['plant_id']} {c['product'][:12]}", c["change_pct"], "warning")
            for c in costs
            if c["change_pct"] is not None
        ],
        unit="ratio",
    )
    rows = [
        [
            esc(c["plant_id"]),
            esc(c["product"]),
            esc(f"{c['material_cost']:,.2f}" if c["material_cost"] is not None else "–"),
            esc(fmt(c["change_pct"], "ratio")),
            esc(fmt(c["margin_pct"], "ratio")),
        ]
        for c in costs
    ]
    headers = [
        "Plant 工厂",
        "Product 产品",
        f"Material cost 材料成本 ({esc(facts['currency'])}/unit)",
        "vs last month 环比",
        "Margin 毛利率",
    ]
    return (
        f'<section class="card wide"><h2>{bilingual("Cost transmission", "成本传导")} '
        f"<small>{esc(facts['month'])}</small></h2>"
        f'<p class="headline">{esc(facts["cost_headline"])}</p>'
        f'<div class="row"><div>{chart}</div><div>{table(headers, rows, css="numbers")}</div>'
        "</div></section>"
    )


CSS = """
body{font-family:"Noto Sans","Noto Sans CJK SC","WenQuanYi Zen Hei",Arial,sans-serif;
margin:16px 24px;color:#212121;background:#fafafa;font-size:13px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:15px;margin:0 0 8px} h3{font-size:13px;margin:4px 0}
small{color:#757575;font-weight:normal} .zh{color:#555}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px;margin:12px 0}
.tile{background:#fff;border-left:5px solid #9e9e9e;padding:8px 10px;border-radius:4px}
.tile.ok{border-color:#2e7d32}.tile.warning{border-color:#ef8f00}.tile.critical{border-color:#c62828}
.tile .figure{font-size:22px;font-weight:bold;margin-top:4px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.card{background:#fff;border-radius:4px;padding:10px 14px;box-shadow:0 1px 2px #0002}
.card.wide{grid-column:1 / span 2}
.row{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}
table{border-collapse:collapse;font-size:12px} th,td{padding:3px 8px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top} table.numbers td{text-align:right}
table.numbers td:first-child{text-align:left}
.badge{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:11px}
.badge.ok{background:#2e7d32}.badge.warning{background:#ef8f00}.badge.critical{background:#c62828}
span.badge.ok,span.badge.warning,span.badge.critical{color:#fff;font-weight:normal}
span.warning{color:#ef8f00;font-weight:bold}span.critical{color:#c62828;font-weight:bold}
.axis,.value{font-size:11px;fill:#424242} .target{stroke:#212121;stroke-dasharray:4 3}
.alert{color:#c62828;font-weight:bold;margin:4px 0} .okline{color:#2e7d32;margin:4px 0}
.headline{font-size:14px;margin:0 0 8px} footer{color:#757575;margin-top:12px;font-size:11px}
"""


def render(facts: dict[str, Any]) -> str:
    title = f"medlake nightly report {facts['date_from']}"
    if facts["date_to"] != facts["date_from"]:
        title += f" .. {facts['date_to']}"
    predictions = facts.get("predictions")
    scored = (
        f"; late-delivery model v{predictions['model_version']}: {predictions['late']} of "
        f"{predictions['lines']} open PO lines predicted late"
        if predictions
        else "; late-delivery model: no champion yet, nothing scored"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{esc(title)} <span class='zh'>夜间运行报告</span></h1>"
        f"<div>{esc(facts['plant_count'])} plants, group currency {esc(facts['currency'])}, "
        f"month {esc(facts['month'])}{esc(scored)}</div>"
        + _tiles(facts)
        + '<div class="grid">'
        + _panorama(facts)
        + _suppliers(facts)
        + _costs(facts)
        + _quality(facts)
        + "</div>"
        + f"<footer>Run {esc(facts['run_id'])}; figures from gold tables computed through the "
        f"metric dictionary (conf/metrics); generated {esc(facts['generated_at'])}.</footer>"
        "</body></html>"
    )
