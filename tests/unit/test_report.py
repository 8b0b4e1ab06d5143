"""The report renderer (medlake/report.py) and the demo's summary, on hand-made figures."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from medlake.report import bar_chart, fmt, render
from medlake_simulator.demo import summary_lines


def _facts(**changes: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "run_id": "scheduled__2026-01-03T00:00:00+00:00",
        "date_from": "2026-01-02",
        "date_to": "2026-01-02",
        "month": "2026-01",
        "generated_at": "2026-01-03T00:20:00+00:00",
        "currency": "EUR",
        "plant_count": 2,
        "names": {"otd": {"en": "On-time delivery", "zh": "准时交货率"}},
        "targets": {"otd": 0.9},
        "kpis": [
            {
                "metric_id": "otd",
                "unit": "ratio",
                "value": 0.875,
                "status": "warning",
                "name_en": "On-time delivery",
                "name_zh": "准时交货率",
            },
        ],
        "panorama_columns": [
            {
                "metric_id": "otd",
                "unit": "ratio",
                "name_en": "On-time delivery",
                "name_zh": "准时交货率",
            },
        ],
        "plants": [
            {"plant_id": "SU", "region": "APAC", "otd": 0.8, "otd_status": "critical"},
            {"plant_id": "TU", "region": "EMEA", "otd": None, "otd_status": "no_data"},
        ],
        "landed": [
            {"plant_id": "SU", "files": 3, "rows_ingested": 300, "rows_quarantined": 2},
            {"plant_id": "TU", "files": 3, "rows_ingested": 100, "rows_quarantined": 0},
        ],
        "quality": {
            "rules": 10,
            "passed": 8,
            "warned": 1,
            "failed": 1,
            "failed_rules": ["silver.fx_rates fresh: rates older than 3 days"],
            "by_table": [
                {"table": "silver.fx_rates", "rules": 2, "passed": 1, "warned": 0, "failed": 1}
            ],
            "reconciliation": {"balanced": 4, "unbalanced": 0},
        },
        "predictions": None,
        "audit": {"ok": True, "events": 12, "message": "audit trail intact: 12 events"},
        "scorecard_window": "window 2025-11..2026-01",
        "suppliers": [
            {
                "name": "Acme <Parts> & Co",
                "category": "plastic",
                "composite": 41.5,
                "rank": 2,
                "of": 2,
                "flags": ["otd_decline"],
                "reasons": ["on-time delivery down 12 points"],
            },
            {
                "name": "Bodensee",
                "category": "plastic",
                "composite": 80.0,
                "rank": 1,
                "of": 2,
                "flags": [],
                "reasons": [],
            },
        ],
        "costs": [
            {
                "plant_id": "SU",
                "product": "WL09000",
                "material_cost": 108.0,
                "prev_material_cost": 100.0,
                "change_pct": 0.08,
                "margin_pct": 0.4,
            },
        ],
        "cost_headline": "Largest material-cost change: WL09000 at SU +8.0%.",
    }
    facts.update(changes)
    return facts


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, list[dict[str, str | None]]] = {}
        self.current: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "svg":
            self.current = a.get("data-chart")
            self.charts[str(self.current)] = []
        elif tag == "rect" and self.current is not None:
            self.charts[self.current].append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.current = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Collect:
    parser = _Collect()
    parser.feed(page)
    return parser


def test_formats_follow_the_unit() -> None:
    assert fmt(0.8754, "ratio") == "87.5%"
    assert fmt(1234567.4, "amount") == "1,234,567"
    assert fmt(16.94, "days") == "16.9 d"
    assert fmt(249.0, "rows") == "249"
    assert fmt(None, "ratio") == "–"


def test_bars_are_proportional_and_carry_their_values() -> None:
    svg = bar_chart(
        "c",
        [("a", 50.0, "ok"), ("b", 100.0, "ok"), ("c", None, "no_data")],
        unit="score",
        width=440,
    )
    rects = _parse(svg).charts["c"]
    widths = [float(str(r["width"])) for r in rects]
    # plot width = 440 - 120 (labels) - 70 (values) = 250; the longest bar fills it
    assert widths == [125.0, 250.0, 1.0]
    assert [r["data-value"] for r in rects] == ["50", "100", ""]


def test_target_line_sits_at_the_target() -> None:
    svg = bar_chart("c", [("a", 0.5, "ok")], unit="ratio", target=1.0, width=440)
    x = re.search(r'<line x1="([\d.]+)"', svg)
    assert x and float(x.group(1)) == 120 + 250.0  # target is the maximum: end of the plot


def test_page_has_the_charts_figures_and_both_languages() -> None:
    page = render(_facts())
    parsed = _parse(page)
    assert set(parsed.charts) == {
        "otd_by_plant",
        "supplier_composite",
        "material_cost_change",
        "rows_landed",
    }
    assert [r["data-value"] for r in parsed.charts["rows_landed"]] == ["300", "100"]
    assert [r["data-value"] for r in parsed.charts["otd_by_plant"]] == ["0.8", ""]
    text = "".join(parsed.text)
    for phrase in (
        "87.5%",
        "8 / 10",
        "准时交货率",
        "供应链全景",
        "质量关卡",
        "silver.fx_rates fresh: rates older than 3 days",
        "Largest material-cost change: WL09000 at SU +8.0%.",
    ):
        assert phrase in text, phrase
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org", "")


def test_values_are_escaped() -> None:
    page = render(_facts())
    assert "Acme &lt;Parts&gt; &amp; Co" in page
    assert "<Parts>" not in page


def test_demo_summary_names_plants_gates_risks_and_cost() -> None:
    lines = "\n".join(summary_lines(_facts()))
    assert "SU 300 (+2 quarantined), TU 100" in lines
    assert "10 rule results, 8 passed, 1 warned, 1 failed" in lines
    assert "failed: silver.fx_rates fresh" in lines
    assert "Acme <Parts> & Co (plastic, score 41.5): on-time delivery down 12 points" in lines
    assert "Bodensee" not in lines  # not flagged
    assert "Largest material-cost change: WL09000 at SU +8.0%." in lines
