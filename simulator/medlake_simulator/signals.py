"""Signals planted in the simulated data, with the ground truth the gold layer is tested on.

Dates are fractions of the simulated period, so every run long enough to show a signal
shows it, whatever its length. The pipeline never reads the answer file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medlake_simulator.world import World


@dataclass
class Signals:
    start: dt.date
    days: int
    # a supplier whose on-time delivery degrades after a date, at every plant it serves
    otd_supplier: int = 0
    otd_before: float = 0.95
    otd_after: float = 0.55
    # a supplier lot that raises incoming rejects, in-process failures and complaints
    bad_lot_plant: str = "SZ"
    bad_lot_material: str = "seal"
    bad_lot_failure_rate: float = 0.10
    bad_lot_complaint_factor: float = 12.0
    # a process parameter drifting on one machine before failures rise
    drift_plant: str = "SZ"
    drift_equipment: str = "SZ-EQ-03"
    drift_parameter: str = "seal_temp"
    drift_per_day: float = 0.35  # degrees C per day after the drift starts
    drift_failure_rate: float = 0.12
    # a component price increase that propagates through the BOM
    price_material: str = "pcb"
    price_increase: float = 0.25
    # an engineering change that lowers the field failure rate of one device
    eco_product: str = "pump"
    eco_material: str = "motor"
    eco_failure_factor: float = 0.35
    # seasonal demand with a trend
    demand_trend_per_year: float = 0.30
    demand_season_amplitude: float = 0.25
    # a cluster of complaints with one fault signature
    cluster_product: str = "monitor"
    cluster_fault: str = "ALM-07"
    cluster_factor: float = 15.0
    # filled in while simulating
    found: dict[str, Any] = field(default_factory=dict)

    def day(self, fraction: float) -> dt.date:
        return self.start + dt.timedelta(days=int(self.days * fraction))

    @property
    def otd_degrade_date(self) -> dt.date:
        return self.day(0.5)

    @property
    def bad_lot_date(self) -> dt.date:
        return self.day(0.2)

    @property
    def drift_start(self) -> dt.date:
        return self.day(0.35)

    @property
    def drift_failure_date(self) -> dt.date:
        return self.day(0.55)

    @property
    def price_date(self) -> dt.date:
        return self.day(0.45)

    @property
    def eco_date(self) -> dt.date:
        return self.day(0.5)

    @property
    def cluster_window(self) -> tuple[dt.date, dt.date]:
        return self.day(0.7), self.day(0.8)

    def answers(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "found"}
        data = {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in data.items()}
        data.update(
            otd_degrade_date=self.otd_degrade_date.isoformat(),
            bad_lot_date=self.bad_lot_date.isoformat(),
            drift_start=self.drift_start.isoformat(),
            drift_failure_date=self.drift_failure_date.isoformat(),
            price_date=self.price_date.isoformat(),
            eco_date=self.eco_date.isoformat(),
            cluster_window=[d.isoformat() for d in self.cluster_window],
        )
        data.update(self.found)
        return data


def identity_maps(world: World) -> dict[str, Any]:
    """Every plant's local code of each real supplier, raw material and finished product.

    `supplier_identity` is keyed by the supplier's English name, `material_identity` by the
    material or product key; each maps plant -> local code, only where the plant has it.
    """
    plants = list(world.plants.values())
    suppliers = {
        s.name_en: {
            p.plant.code: p.supplier_codes[s.index] for p in plants if s.index in p.supplier_codes
        }
        for s in world.suppliers
    }
    materials = {
        key: {p.plant.code: p.material_codes[key] for p in plants} for key in world.materials
    }
    products = {
        key: {p.plant.code: p.product_codes[key] for p in plants if key in p.products}
        for key in world.products
    }
    return {
        "supplier_identity": {name: codes for name, codes in suppliers.items() if codes},
        "material_identity": {key: codes for key, codes in (materials | products).items() if codes},
    }
