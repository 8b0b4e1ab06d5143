"""Classes that match the access policy: every column that looks commercial (by its name or a
money unit) or personal is confidential or personal data, unless a reviewed decision says why
not; regional roles then never receive prices or costs."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from medlake.config import DEFAULT_CONF_DIR
from medlake.entities import full_registry
from medlake.governance.access import AccessDenied, load_access, load_plants
from medlake.governance.classes import load_class_decisions, review_classes

PRICES = {
    "silver.purchase_orders": {"unit_price", "unit_price_group", "unit_price_source"},
    "silver.sales_orders": {"unit_price", "unit_price_group"},
    "silver.standard_costs": {"std_unit_cost", "std_unit_cost_group"},
    "silver.supplier_invoices": {"unit_price", "unit_price_group", "amount", "amount_group"},
    "silver.service_orders": {"parts_cost", "parts_cost_group", "labour_cost", "labour_cost_group"},
    "silver.suppliers": {"payment_terms_days"},
    "gold.product_cost": {"material_cost_group", "revenue_group", "avg_price_group", "margin_pct"},
    "gold.cost_transmission": {"unit_cost_group", "contribution_group", "delta_vs_standard_group"},
    "gold.supplier_scorecard": {"price", "price_n", "price_score"},
}


def test_the_packaged_classes_need_no_further_decision() -> None:
    registry = full_registry(DEFAULT_CONF_DIR)
    assert review_classes(registry, load_class_decisions(DEFAULT_CONF_DIR)) == []


def test_an_open_price_column_or_a_stale_decision_fails_the_review(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    spec_path = conf / "silver" / "sales_orders.yaml"
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    for column in spec["columns"]:
        if column["name"] == "unit_price":
            column["classification"] = "internal"  # as it was before the review
    spec_path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    decisions_path = conf / "governance" / "class_decisions.yaml"
    decisions = yaml.safe_load(decisions_path.read_text(encoding="utf-8"))
    decisions["decisions"]["silver.products.gtin"] = "not a name at all"
    del decisions["decisions"]["silver.suppliers.supplier_name"]
    decisions_path.write_text(yaml.safe_dump(decisions, allow_unicode=True), encoding="utf-8")

    problems = review_classes(full_registry(conf), load_class_decisions(conf))
    flagged = {p.split(" ")[0] for p in problems}
    assert flagged == {
        "silver.sales_orders.unit_price",
        "silver.sales_orders.unit_price_group",  # the group-currency twin inherits the class
        "silver.suppliers.supplier_name",
        "governance/class_decisions.yaml:",
    }
    assert any("silver.products.gtin is no longer" in p for p in problems)
    assert any("unit_price_group is classed internal but its" in p for p in problems)


def test_regional_roles_get_no_price_or_cost_and_central_roles_do() -> None:
    registry = full_registry(DEFAULT_CONF_DIR)
    policy, plants = load_access(DEFAULT_CONF_DIR), load_plants(DEFAULT_CONF_DIR)
    for table, priced in PRICES.items():
        spec = registry.get(table)
        assert priced <= {c.name for c in spec.columns}, table
        for role in ("analyst_cn", "analyst_eu", "analyst_us"):
            try:
                columns = set(policy.plan(role, spec, plants).columns)
            except AccessDenied:  # a table without plant_id: a regional role reads none of it
                columns = set()
            assert not priced & columns, (role, table)
        assert priced <= set(policy.plan("group_analyst", spec, plants).columns), table
