"""Day-by-day simulation of each plant's operations: what each system records that day.

`Simulation.run_day(plant, day)` returns the records of every entity for one plant and one
day (canonical field names, Python values, local time and units); `writer` turns them into
the plant's files. State (stock by lot, open orders, devices in the field) carries over from
day to day, so the same arguments always produce the same records.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlake_simulator.pii import PiiFaker, narrative
from medlake_simulator.plants import Plant
from medlake_simulator.signals import Signals
from medlake_simulator.world import PlantWorld, World

Record = dict[str, Any]
FIELD_DAYS = 730  # devices tracked in the field: complaints, repairs, warranty (1 year)
PLANT_DIGIT = {"SZ": 1, "SU": 2, "PN": 3, "GW": 4, "TU": 5, "MN": 6}
FAULTS = ("LEAK", "ALM-07", "NO-POWER", "DISPLAY", "CRACK", "NOISE", "BATTERY", "OCCLUSION")
FAULT_WORDS = {
    "zh": {
        "LEAK": "管路渗漏",
        "ALM-07": "反复出现ALM-07阻塞报警",
        "NO-POWER": "无法开机",
        "DISPLAY": "屏幕显示异常",
        "CRACK": "外壳开裂",
        "NOISE": "电机异响",
        "BATTERY": "电池续航不足",
        "OCCLUSION": "管路堵塞",
    },
    "de": {
        "LEAK": "Undichtigkeit am Schlauch",
        "ALM-07": "wiederholter Alarm ALM-07 (Okklusion)",
        "NO-POWER": "Gerät startet nicht",
        "DISPLAY": "Anzeige fehlerhaft",
        "CRACK": "Gehäuse gerissen",
        "NOISE": "Motorgeräusche",
        "BATTERY": "Akku hält nicht",
        "OCCLUSION": "Schlauch verstopft",
    },
    "en": {
        "LEAK": "leak at the tubing",
        "ALM-07": "repeated ALM-07 occlusion alarm",
        "NO-POWER": "device does not power on",
        "DISPLAY": "display faulty",
        "CRACK": "cracked housing",
        "NOISE": "motor noise",
        "BATTERY": "battery drains quickly",
        "OCCLUSION": "tubing occluded",
    },
}
DEFECTS = ("DIM", "SURF", "CONTAM", "FUNC", "LABEL", "SEAL")
FX_PER_EUR = {"EUR": 1.0, "USD": 1.08, "CNY": 7.8, "MYR": 5.0}
STEPS = (  # step, parameter, lsl, usl, target, sd
    ("molding", "mold_temp", 180.0, 200.0, 190.0, 2.0),
    ("assembly", "torque", 0.8, 1.2, 1.0, 0.05),
    ("sealing", "seal_temp", 140.0, 160.0, 150.0, 1.5),
    ("test", "leak_rate", 0.0, 0.5, 0.2, 0.06),
)
_WORDS = {
    "zh": {
        "hospital": "医院",
        "distributor": "经销商",
        "accept": "合格",
        "reject": "不合格",
        "deviation": "让步接收",
        "in_process": "过程检验",
        "final": "终检",
        "receipt": "采购入库",
        "issue": "生产领料",
        "production": "成品入库",
        "shipment": "销售出库",
        "scrap": "报废",
        "released": "已完工",
        "incoming": "来料",
        "field": "市场",
    },
    "de": {
        "hospital": "Klinik",
        "distributor": "Händler",
        "accept": "angenommen",
        "reject": "abgelehnt",
        "deviation": "Sonderfreigabe",
        "in_process": "Zwischenprüfung",
        "final": "Endprüfung",
        "receipt": "WE",
        "issue": "Entnahme",
        "production": "Fertigmeldung",
        "shipment": "WA",
        "scrap": "Verschrottung",
        "released": "abgeschlossen",
        "incoming": "Eingang",
        "field": "Feld",
    },
    "en": {
        "hospital": "Hospital",
        "distributor": "Distributor",
        "accept": "ACCEPT",
        "reject": "REJECT",
        "deviation": "ACCEPT-DEV",
        "in_process": "IPQC",
        "final": "FQC",
        "receipt": "GR",
        "issue": "GI-PROD",
        "production": "GR-PROD",
        "shipment": "GI-SHIP",
        "scrap": "SCRAP",
        "released": "CLOSED",
        "incoming": "INCOMING",
        "field": "FIELD",
    },
}


def local_word(plant: Plant, word: str) -> str:
    return _WORDS[plant.lang][word]


def local_fault(plant: Plant, fault: str) -> str:
    index = FAULTS.index(fault) + 1
    return {"zh": f"GZ{index:02d}", "de": f"FB-{index:03d}"}.get(
        plant.lang, f"{plant.code}-F{index:02d}"
    )


def local_defect(plant: Plant, defect: str) -> str:
    index = DEFECTS.index(defect) + 1
    return {"zh": f"QX{index:02d}", "de": f"F{index:02d}"}.get(plant.lang, f"D{index:03d}")


@dataclass
class CompLot:
    lot: str
    qty: float  # base units left
    bad: bool


@dataclass
class FinLot:
    lot: str
    product: str
    qty: int  # units not yet shipped
    serial_base: str
    next_unit: int
    produced: dt.date
    expiry: dt.date
    bad: bool
    post_eco: bool


@dataclass
class FieldBatch:
    shipped: dt.date
    lot: str
    product: str
    customer: str
    serial_base: str
    first_unit: int
    count: int
    expiry: dt.date
    bad: bool
    post_eco: bool


GroupKey = tuple[str, bool, bool]  # product, built with the bad lot, built after the ECO
MAX_BATCH = 40  # largest sales-order line, so the largest shipped batch


class FieldDevices:
    """Shipped batches still tracked in the field, grouped by what drives their incident rate.

    Each group is a list in shipping order with a moving head, so expiring old batches,
    drawing a batch in proportion to its device count and summing a group are all cheap
    however many devices are in the field.
    """

    def __init__(self) -> None:
        self._lists: dict[GroupKey, list[FieldBatch]] = {}
        self._heads: dict[GroupKey, int] = {}
        self._units: dict[GroupKey, int] = {}

    def add(self, batch: FieldBatch) -> None:
        key = (batch.product, batch.bad, batch.post_eco)
        self._lists.setdefault(key, []).append(batch)
        self._heads.setdefault(key, 0)
        self._units[key] = self._units.get(key, 0) + batch.count

    def expire(self, day: dt.date, max_days: int) -> None:
        for key, batches in self._lists.items():
            head = self._heads[key]
            while head < len(batches) and (day - batches[head].shipped).days > max_days:
                self._units[key] -= batches[head].count
                head += 1
            if head > 4096 and head * 2 > len(batches):
                del batches[:head]
                head = 0
            self._heads[key] = head

    def groups(self) -> dict[GroupKey, int]:
        """Devices in the field per group (groups with none left out)."""
        return {k: n for k, n in sorted(self._units.items()) if n > 0}

    def pick(self, key: GroupKey, rng: np.random.Generator) -> FieldBatch:
        """A batch of the group, chosen in proportion to its device count."""
        batches, head = self._lists[key], self._heads[key]
        while True:
            batch = batches[int(rng.integers(head, len(batches)))]
            if rng.random() * MAX_BATCH < batch.count:
                return batch


@dataclass
class PlantState:
    comp: dict[str, deque[CompLot]] = field(default_factory=dict)
    pipeline: dict[str, float] = field(default_factory=dict)  # base units on order
    pending: dict[dt.date, list[Record]] = field(default_factory=dict)  # receipts due
    corrections: dict[dt.date, list[Record]] = field(default_factory=dict)
    finished: dict[str, deque[FinLot]] = field(default_factory=dict)  # per product, FIFO
    in_field: FieldDevices = field(default_factory=FieldDevices)
    counters: dict[str, int] = field(default_factory=dict)
    fx: dict[str, float] = field(default_factory=lambda: dict(FX_PER_EUR))

    def next(self, name: str) -> int:
        self.counters[name] = self.counters.get(name, 0) + 1
        return self.counters[name]


class Simulation:
    """The whole group, advanced one day at a time."""

    def __init__(self, world: World, signals: Signals, seed: int, scale: float) -> None:
        self.world = world
        self.signals = signals
        self.seed = seed
        self.scale = scale
        self.states = {code: PlantState() for code in world.plants}

    # ------------------------------------------------------------------ helpers

    def _rng(self, plant: Plant, day: dt.date, stream: int) -> np.random.Generator:
        return np.random.default_rng(
            [self.seed, 100 + stream, ord(plant.code[0]), ord(plant.code[1]), day.toordinal()]
        )

    def _daily_usage(self, pw: PlantWorld) -> dict[str, float]:
        usage: dict[str, float] = {}
        for product in pw.products:
            units = self._wo_rate(pw) * 60
            for material, qty in self.world.products[product].bom.items():
                usage[material] = usage.get(material, 0.0) + qty * units
        return usage

    def _wo_rate(self, pw: PlantWorld) -> float:
        return 0.9 * self.scale * pw.plant.size

    def _unit_price(
        self, pw: PlantWorld, material: str, supplier: int, day: dt.date, rng: np.random.Generator
    ) -> float:
        m = self.world.materials[material]
        state = self.states[pw.plant.code]
        price = m.price_eur * state.fx[pw.plant.currency] * (1 + rng.normal(0, 0.01))
        if material == self.signals.price_material and day >= self.signals.price_date:
            price *= 1 + self.signals.price_increase
        return round(price * (10 if material in pw.box_materials else 1), 4)

    def _on_time_prob(self, supplier: int, due: dt.date) -> float:
        s = self.signals
        if supplier == s.otd_supplier:
            return s.otd_after if due >= s.otd_degrade_date else s.otd_before
        return self.world.suppliers[supplier].on_time

    # ------------------------------------------------------------------ the day

    def run_day(self, code: str, day: dt.date) -> dict[str, list[Record]]:
        pw = self.world.plants[code]
        plant = pw.plant
        out: dict[str, list[Record]] = {}
        rng = self._rng(plant, day, 0)
        faker = PiiFaker(self._rng(plant, day, 1))
        self._fx(plant, day, rng, out)
        self._master(pw, day, out)
        if day == self.world.start:
            self._opening_stock(pw, day, rng, out)
        self._purchasing(pw, day, rng, out)
        self._receiving(pw, day, rng, out)
        self._production(pw, day, rng, faker, out)
        self._field(pw, day, rng, faker, out)  # devices shipped before today
        self._sales_and_shipping(pw, day, rng, out)
        self._on_hand(pw, day, out)
        return out

    def _fx(
        self, plant: Plant, day: dt.date, rng: np.random.Generator, out: dict[str, list[Record]]
    ) -> None:
        state = self.states[plant.code]
        walk = np.random.default_rng([self.seed, 7, day.toordinal()])
        for cur in ("USD", "CNY", "MYR"):
            state.fx[cur] = FX_PER_EUR[cur] * math.exp(float(walk.normal(0, 0.01)))
        out["erp__fx_rates"] = [
            {
                "rate_date": day,
                "from_currency": cur,
                "to_currency": plant.currency,
                "rate": round(state.fx[plant.currency] / state.fx[cur], 6),
            }
            for cur in ("EUR", "USD", "CNY", "MYR")
            if cur != plant.currency
        ]

    def _master(self, pw: PlantWorld, day: dt.date, out: dict[str, list[Record]]) -> None:
        w, plant, s = self.world, pw.plant, self.signals
        stamp = dt.datetime.combine(w.start, dt.time(2, 0))
        out["erp__suppliers"] = [
            {
                "supplier_code": pw.supplier_codes[i],
                "supplier_name": pw.supplier_names[i],
                "tax_id": w.suppliers[i].tax_id,
                "country": w.suppliers[i].country,
                "contact_name": c[0],
                "contact_phone": c[1],
                "contact_email": c[2],
                "payment_terms_days": 30 + 15 * (i % 3),
                "updated_at": stamp,
            }
            for i in pw.supplier_indexes
            for c in [self._supplier_contact(pw, i)]
        ]
        desc = {"zh": "desc_zh", "de": "desc_de", "en": "desc_en"}[plant.lang]
        name = {"zh": "name_zh", "de": "name_de", "en": "name_en"}[plant.lang]
        out["erp__materials"] = [
            {
                "material_code": pw.material_codes[m.key],
                "description": getattr(m, desc),
                "category": m.category,
                "uom": plant.unit_style,
                "std_lead_time_days": m.lead_days,
                "global_ref": f"GP-{m.index:04d}" if plant.code in ("GW", "MN") else None,
                "updated_at": stamp,
            }
            for m in w.materials.values()
        ] + [
            {
                "material_code": pw.product_codes[p],
                "description": getattr(w.products[p], name),
                "category": "finished",
                "uom": plant.unit_style,
                "std_lead_time_days": 0,
                "global_ref": None,
                "updated_at": stamp,
            }
            for p in pw.products
        ]
        out["erp__boms"] = [
            {
                "product_code": pw.product_codes[p],
                "component_code": pw.material_codes[m],
                "qty_per": float(q),
                "uom": plant.unit_style,
                "valid_from": w.start - dt.timedelta(days=365),
            }
            for p in pw.products
            for m, q in w.products[p].bom.items()
        ]
        out["erp__standard_costs"] = [
            {
                "material_code": pw.material_codes[m.key],
                "valid_from": w.start - dt.timedelta(days=30),
                "std_unit_cost": round(m.price_eur * FX_PER_EUR[plant.currency], 4),
                "currency": plant.currency,
            }
            for m in w.materials.values()
        ]
        out["erp__customers"] = [
            {
                "customer_code": c.code,
                "customer_name": c.name,
                "customer_type": local_word(plant, c.kind),
                "country": c.country,
                "contact_name": c.contact_name,
                "contact_phone": c.contact_phone,
                "contact_email": c.contact_email,
                "updated_at": stamp,
            }
            for c in pw.customers
        ]
        out["mes__operators"] = [
            {"operator_id": op[0], "operator_name": op[1], "shift": op[2]} for op in pw.operators
        ]
        out["plm__products"] = [
            {
                "product_code": pw.product_codes[p],
                "gtin": w.products[p].gtin,
                "product_name": getattr(w.products[p], name),
                "device_class": w.products[p].device_class,
                "revision": "B" if p == s.eco_product and day >= s.eco_date else "A",
                "released_date": s.eco_date
                if p == s.eco_product and day >= s.eco_date
                else w.start - dt.timedelta(days=400),
            }
            for p in pw.products
        ]
        out["plm__ecos"] = (
            [
                {
                    "eco_number": f"ECO-{s.eco_date:%y%m}-001",
                    "product_code": pw.product_codes[s.eco_product],
                    "affected_material": pw.material_codes[s.eco_material],
                    "description": {
                        "zh": "更换电机轴承，降低故障率",
                        "de": "Motorlager geändert, geringere Ausfallrate",
                        "en": "Motor bearing changed to reduce field failures",
                    }[plant.lang],
                    "effective_date": s.eco_date,
                }
            ]
            if s.eco_product in pw.products
            else []
        )

    def _supplier_contact(self, pw: PlantWorld, supplier: int) -> tuple[str, str, str]:
        faker = PiiFaker(
            np.random.default_rng(
                [self.seed, 9, supplier, ord(pw.plant.code[0]), ord(pw.plant.code[1])]
            )
        )
        country = self.world.suppliers[supplier].country
        lang = "zh" if country == "CN" else "de" if country == "DE" else "en"
        name = faker.person_name(lang)  # type: ignore[arg-type]
        return name, faker.phone(country), faker.email(name if lang != "zh" else None)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ purchasing

    def _new_po(
        self,
        pw: PlantWorld,
        material: str,
        order_day: dt.date,
        base_qty: float,
        rng: np.random.Generator,
        arrival: dt.date | None = None,
    ) -> Record:
        state = self.states[pw.plant.code]
        m = self.world.materials[material]
        choices = [s for s in m.suppliers if s in pw.supplier_codes]
        supplier = choices[int(rng.integers(len(choices)))]
        box = material in pw.box_materials
        qty = math.ceil(base_qty / 10) if box else math.ceil(base_qty)
        due = order_day + dt.timedelta(days=m.lead_days)
        number = state.next("po")
        po = {
            "po_number": f"{pw.plant.code}PO{number:07d}",
            "po_line": 10,
            "supplier_code": pw.supplier_codes[supplier],
            "material_code": pw.material_codes[material],
            "order_date": order_day,
            "due_date": due,
            "ordered_qty": float(qty),
            "uom": "BOX" if box else pw.plant.unit_style,
            "unit_price": self._unit_price(pw, material, supplier, order_day, rng),
            "currency": pw.plant.currency,
            "record_version": 1,
            "updated_at": dt.datetime.combine(order_day, dt.time(9, 0))
            + dt.timedelta(minutes=int(rng.integers(480))),
            "_material": material,
            "_supplier": supplier,
            "_base_qty": qty * (10 if box else 1),
        }
        on_time = rng.random() < self._on_time_prob(supplier, due)
        delay = int(rng.integers(-2, 3)) if on_time else int(rng.integers(3, 13))
        if arrival is None:
            arrival = max(due + dt.timedelta(days=delay), order_day + dt.timedelta(days=1))
        state.pending.setdefault(arrival, []).append(po)
        state.pipeline[material] = state.pipeline.get(material, 0.0) + float(
            qty * (10 if box else 1)
        )
        return po

    def _opening_stock(
        self, pw: PlantWorld, day: dt.date, rng: np.random.Generator, out: dict[str, list[Record]]
    ) -> None:
        """Orders placed before the first day that arrive on it, so production can start."""
        pos = out.setdefault("erp__purchase_orders", [])
        for material, per_day in sorted(self._daily_usage(pw).items()):
            lead = self.world.materials[material].lead_days
            ordered = day - dt.timedelta(days=lead)
            pos.append(self._new_po(pw, material, ordered, per_day * (lead + 10), rng, arrival=day))

    def _purchasing(
        self, pw: PlantWorld, day: dt.date, rng: np.random.Generator, out: dict[str, list[Record]]
    ) -> None:
        state = self.states[pw.plant.code]
        pos = out.setdefault("erp__purchase_orders", [])
        for material, per_day in sorted(self._daily_usage(pw).items()):
            lead = self.world.materials[material].lead_days
            on_hand = sum(lot.qty for lot in state.comp.get(material, ()))
            position = on_hand + state.pipeline.get(material, 0.0)
            if position < per_day * (lead + 7):
                lots = int(rng.integers(1, 4))
                for _ in range(lots):
                    size = per_day * 4 / lots * float(rng.uniform(0.8, 1.2))
                    po = self._new_po(pw, material, day, size, rng)
                    pos.append(po)
                    if rng.random() < 0.02:  # late correction: re-sent with a higher version
                        later = day + dt.timedelta(days=int(rng.integers(1, 4)))
                        state.corrections.setdefault(later, []).append(po)
        for po in state.corrections.pop(day, []):
            fixed = dict(po)
            fixed["record_version"] = po["record_version"] + 1
            fixed["ordered_qty"] = float(po["ordered_qty"] + int(rng.integers(1, 5)))
            if not po.get("_received"):  # the corrected quantity is what arrives
                extra = (fixed["ordered_qty"] - po["ordered_qty"]) * (
                    10 if po["uom"] == "BOX" else 1
                )
                state.pipeline[po["_material"]] = state.pipeline.get(po["_material"], 0.0) + extra
                po["_base_qty"] = po["_base_qty"] + extra
                po["ordered_qty"] = fixed["ordered_qty"]
            fixed["updated_at"] = dt.datetime.combine(day, dt.time(16, 30))
            pos.append(fixed)

    def _receiving(
        self, pw: PlantWorld, day: dt.date, rng: np.random.Generator, out: dict[str, list[Record]]
    ) -> None:
        plant, state, s = pw.plant, self.states[pw.plant.code], self.signals
        receipts, inspections, invoices, moves, ncrs = [], [], [], [], []
        for po in state.pending.pop(day, []):
            material, supplier = po["_material"], po["_supplier"]
            state.pipeline[material] = state.pipeline.get(material, 0.0) - po["_base_qty"]
            po["_received"] = True
            n = state.next("gr")
            abbr = self.world.suppliers[supplier].name_en[:3].upper()
            lot = f"{abbr}{day:%y%m%d}{PLANT_DIGIT[plant.code]}{n % 10000:04d}"
            full = rng.random() > 0.05
            qty = (
                po["ordered_qty"]
                if full
                else float(max(1, math.floor(po["ordered_qty"] * rng.uniform(0.8, 0.99))))
            )
            base_qty = qty * (10 if po["uom"] == "BOX" else 1)
            posted = dt.datetime.combine(day, dt.time(6, 0)) + dt.timedelta(
                minutes=int(rng.integers(300))
            )
            receipt_id = f"{plant.code}GR{n:08d}"
            receipts.append(
                {
                    "receipt_id": receipt_id,
                    "po_number": po["po_number"],
                    "po_line": po["po_line"],
                    "supplier_lot": lot,
                    "receipt_date": day,
                    "received_qty": qty,
                    "uom": po["uom"],
                    "posted_at": posted,
                    "_supplier": supplier,
                    "_material": material,
                    "_due": po["due_date"],
                }
            )
            invoices.append(
                {
                    "invoice_id": f"{plant.code}INV{n:08d}",
                    "po_number": po["po_number"],
                    "po_line": po["po_line"],
                    "invoice_date": day,
                    "qty": qty,
                    "unit_price": po["unit_price"],
                    "amount": round(qty * po["unit_price"], 2),
                    "currency": po["currency"],
                }
            )
            bad = (
                plant.code == s.bad_lot_plant
                and material == s.bad_lot_material
                and day >= s.bad_lot_date
                and "bad_lot" not in s.found
            )
            sample = float(min(80, base_qty))
            if bad:
                rejected = float(rng.integers(5, 9))
                result = local_word(plant, "deviation")
                s.found.update(
                    bad_lot=lot,
                    bad_lot_receipt=receipt_id,
                    bad_lot_supplier=self.world.suppliers[supplier].name_en,
                    bad_lot_received=day.isoformat(),
                )
            elif rng.random() < 0.02:
                rejected, result = float(rng.integers(4, 11)), local_word(plant, "reject")
            else:
                rejected, result = (
                    float(rng.binomial(int(sample), 0.004)),
                    local_word(plant, "accept"),
                )
            inspections.append(
                {
                    "inspection_id": f"{plant.code}IQC{n:08d}",
                    "receipt_id": receipt_id,
                    "material_code": pw.material_codes[material],
                    "supplier_lot": lot,
                    "inspected_qty": sample,
                    "rejected_qty": rejected,
                    "result": result,
                    "defect_code": local_defect(plant, "DIM" if material != "seal" else "SEAL")
                    if rejected
                    else None,
                    "inspected_at": posted + dt.timedelta(hours=2),
                }
            )
            if result == local_word(plant, "reject"):
                ncrs.append(
                    {
                        "ncr_id": f"{plant.code}NCR{state.next('ncr'):06d}",
                        "source": local_word(plant, "incoming"),
                        "lot": lot,
                        "material_code": pw.material_codes[material],
                        "defect_code": local_defect(plant, "DIM"),
                        "opened_date": day,
                    }
                )
                continue
            state.comp.setdefault(material, deque()).append(CompLot(lot, base_qty, bad))
            moves.append(self._move(pw, "receipt", material, lot, base_qty, posted, day))
        out["erp__goods_receipts"] = receipts
        out["erp__supplier_invoices"] = invoices
        out["qc__incoming_inspections"] = inspections
        out.setdefault("qc__nonconformances", []).extend(ncrs)
        out.setdefault("wms__stock_movements", []).extend(moves)

    def _move(
        self,
        pw: PlantWorld,
        kind: str,
        material: str,
        lot: str,
        qty: float,
        at: dt.datetime,
        day: dt.date,
    ) -> Record:
        state = self.states[pw.plant.code]
        code = pw.material_codes.get(material) or pw.product_codes[material]
        sign = -1 if kind in ("issue", "shipment", "scrap") else 1
        return {
            "movement_id": f"{pw.plant.code}MV{state.next('mv'):09d}",
            "movement_type": local_word(pw.plant, kind),
            "material_code": code,
            "lot": lot,
            "qty": sign * qty,
            "uom": pw.plant.unit_style,
            "moved_at": at,
        }

    # ------------------------------------------------------------------ production

    def _production(
        self,
        pw: PlantWorld,
        day: dt.date,
        rng: np.random.Generator,
        faker: PiiFaker,
        out: dict[str, list[Record]],
    ) -> None:
        plant, state, s, w = pw.plant, self.states[pw.plant.code], self.signals, self.world
        wos, lots, genealogy, meas, pinsp = [], [], [], [], []
        moves = out.setdefault("wms__stock_movements", [])
        ncrs = out.setdefault("qc__nonconformances", [])
        for product in pw.products:
            for _ in range(int(rng.poisson(self._wo_rate(pw) / len(pw.products) * 2))):
                units = int(rng.integers(30, 91))
                in_stock = sum(f.qty for f in state.finished.get(product, ()))
                if in_stock > 10 * self._mean_demand(pw, day):
                    continue  # make to stock: enough finished devices on hand
                bom = w.products[product].bom
                if any(
                    sum(c.qty for c in state.comp.get(m, ())) < q * units for m, q in bom.items()
                ):
                    continue  # short of a component: the work order waits
                n = state.next("wo")
                wo = f"{plant.code}WO{n:07d}"
                start = dt.datetime.combine(day, dt.time(13, 0)) + dt.timedelta(
                    minutes=int(rng.integers(180))
                )
                lot = f"L{day:%y%m}{plant.code}{n:05d}"
                bad = False
                for material, per in bom.items():
                    need = per * units
                    queue = state.comp[material]
                    while need > 1e-9:
                        head = queue[0]
                        take = min(head.qty, need)
                        head.qty -= take
                        need -= take
                        bad = bad or head.bad
                        at = start + dt.timedelta(minutes=int(rng.integers(1, 30)))
                        genealogy.append(
                            {
                                "finished_lot": lot,
                                "component_code": pw.material_codes[material],
                                "component_lot": head.lot,
                                "qty_consumed": round(take, 4),
                                "consumed_at": at,
                            }
                        )
                        moves.append(
                            self._move(pw, "issue", material, head.lot, round(take, 4), at, day)
                        )
                        if head.qty <= 1e-9:
                            queue.popleft()
                equipment = pw.equipment[int(rng.integers(len(pw.equipment)))]
                drifting = plant.code == s.drift_plant and equipment == s.drift_equipment
                fail_p = 0.02
                if bad:
                    fail_p = max(fail_p, s.bad_lot_failure_rate)
                    s.found.setdefault("bad_lot_finished_lots", []).append(lot)
                if drifting and day >= s.drift_failure_date:
                    fail_p = max(fail_p, s.drift_failure_rate)
                failed = int(rng.binomial(units, fail_p))
                end = start + dt.timedelta(hours=4)
                wos.append(
                    {
                        "wo_number": wo,
                        "product_code": pw.product_codes[product],
                        "planned_qty": units,
                        "line_id": pw.lines[n % len(pw.lines)],
                        "started_at": start,
                        "finished_at": end,
                        "status": local_word(plant, "released"),
                    }
                )
                post_eco = product == s.eco_product and day >= s.eco_date
                expiry = day + dt.timedelta(days=730)
                lots.append(
                    {
                        "lot_number": lot,
                        "wo_number": wo,
                        "product_code": pw.product_codes[product],
                        "qty_started": units,
                        "qty_good": units - failed,
                        "qty_scrap": failed,
                        "production_date": day,
                        "expiry_date": expiry,
                    }
                )
                operator = pw.operators[int(rng.integers(len(pw.operators)))][0]
                for step, param, lsl, usl, target, sd in STEPS:
                    eq = (
                        equipment
                        if step == "sealing"
                        else pw.equipment[(n + len(step)) % len(pw.equipment)]
                    )
                    for k in range(3):
                        value = float(rng.normal(target, sd))
                        if step == "sealing" and drifting and day >= s.drift_start:
                            value += s.drift_per_day * (day - s.drift_start).days
                        meas.append(
                            {
                                "measurement_id": f"{lot}-{step[:3].upper()}-{k}",
                                "lot_number": lot,
                                "step": step,
                                "equipment_id": eq,
                                "parameter": param,
                                "value": round(value, 3),
                                "lsl": lsl,
                                "usl": usl,
                                "measured_at": start + dt.timedelta(minutes=20 * k + 5),
                                "operator_id": operator,
                            }
                        )
                defect = (
                    local_defect(plant, "SEAL" if bad or drifting else "FUNC") if failed else None
                )
                pinsp.append(
                    {
                        "inspection_id": f"{lot}-IP",
                        "lot_number": lot,
                        "stage": local_word(plant, "in_process"),
                        "inspected_qty": units,
                        "failed_qty": failed,
                        "defect_code": defect,
                        "inspected_at": end - dt.timedelta(hours=1),
                    }
                )
                final_failed = int(rng.binomial(units - failed, 0.002))
                pinsp.append(
                    {
                        "inspection_id": f"{lot}-FQ",
                        "lot_number": lot,
                        "stage": local_word(plant, "final"),
                        "inspected_qty": units - failed,
                        "failed_qty": final_failed,
                        "defect_code": local_defect(plant, "LABEL") if final_failed else None,
                        "inspected_at": end,
                    }
                )
                if failed / units > 0.08:
                    ncrs.append(
                        {
                            "ncr_id": f"{plant.code}NCR{state.next('ncr'):06d}",
                            "source": local_word(plant, "in_process"),
                            "lot": lot,
                            "material_code": pw.product_codes[product],
                            "defect_code": defect,
                            "opened_date": day,
                        }
                    )
                good = units - failed - final_failed
                lots[-1]["qty_good"], lots[-1]["qty_scrap"] = good, failed + final_failed
                # in-process rejects never reach finished stock; final rejects are scrapped from it
                booked = units - failed
                moves.append(self._move(pw, "production", product, lot, float(booked), end, day))
                if final_failed:
                    moves.append(
                        self._move(pw, "scrap", product, lot, float(final_failed), end, day)
                    )
                state.finished.setdefault(product, deque()).append(
                    FinLot(
                        lot, product, good, f"SN{plant.code}{n:06d}", 1, day, expiry, bad, post_eco
                    )
                )
        out["mes__work_orders"] = wos
        out["mes__production_lots"] = lots
        out["mes__lot_genealogy"] = genealogy
        out["mes__process_measurements"] = meas
        out["qc__production_inspections"] = pinsp

    # ------------------------------------------------------------------ sales

    def _demand_factor(self, day: dt.date) -> float:
        s = self.signals
        years = (day - self.world.start).days / 365.0
        season = 1 + s.demand_season_amplitude * math.sin(
            2 * math.pi * (day.timetuple().tm_yday - 80) / 365.0
        )
        weekday = 0.6 if day.weekday() >= 5 else 1.1
        return (1 + s.demand_trend_per_year * years) * season * weekday

    def _mean_demand(self, pw: PlantWorld, day: dt.date) -> float:
        """Expected units per day of one product at this plant."""
        return self._wo_rate(pw) / len(pw.products) * 2 * 58 * self._demand_factor(day)

    def _sales_and_shipping(
        self, pw: PlantWorld, day: dt.date, rng: np.random.Generator, out: dict[str, list[Record]]
    ) -> None:
        plant, state = pw.plant, self.states[pw.plant.code]
        orders: list[Record] = []
        shipments: list[Record] = []
        moves = out.setdefault("wms__stock_movements", [])
        for product in pw.products:
            mean_units = self._mean_demand(pw, day)
            demand = int(rng.poisson(mean_units))
            while demand > 0:
                qty = min(demand, int(rng.integers(5, 41)))
                demand -= qty
                customer = pw.customers[int(rng.integers(len(pw.customers)))]
                n = state.next("so")
                so = f"{plant.code}SO{n:07d}"
                price = (
                    round(self.world.products[product].index * 40 + 120.0, 2)
                    * FX_PER_EUR[plant.currency]
                )
                orders.append(
                    {
                        "so_number": so,
                        "so_line": 10,
                        "customer_code": customer.code,
                        "product_code": pw.product_codes[product],
                        "order_date": day,
                        "requested_date": day + dt.timedelta(days=int(rng.integers(3, 15))),
                        "qty": float(qty),
                        "unit_price": round(price, 2),
                        "currency": plant.currency,
                    }
                )
                shipped = self._ship(pw, product, qty, customer.code, so, day, shipments)
                for lot, count in shipped:
                    moves.append(
                        self._move(
                            pw,
                            "shipment",
                            product,
                            lot,
                            float(count),
                            dt.datetime.combine(day, dt.time(21, 30)),
                            day,
                        )
                    )
        out["erp__sales_orders"] = orders
        out["wms__shipments"] = shipments

    def _ship(
        self,
        pw: PlantWorld,
        product: str,
        qty: int,
        customer: str,
        so: str,
        day: dt.date,
        shipments: list[Record],
    ) -> list[tuple[str, int]]:
        state = self.states[pw.plant.code]
        done: list[tuple[str, int]] = []
        shipment_id = f"{pw.plant.code}DN{state.next('dn'):08d}"
        queue = state.finished.setdefault(product, deque())
        while qty > 0 and queue:
            fin = queue[0]
            take = min(fin.qty, qty)
            for k in range(take):
                shipments.append(
                    {
                        "shipment_id": shipment_id,
                        "so_number": so,
                        "customer_code": customer,
                        "product_code": pw.product_codes[product],
                        "lot": fin.lot,
                        "serial": f"{fin.serial_base}{fin.next_unit + k:04d}",
                        "ship_date": day,
                    }
                )
            state.in_field.add(
                FieldBatch(
                    day,
                    fin.lot,
                    product,
                    customer,
                    fin.serial_base,
                    fin.next_unit,
                    take,
                    fin.expiry,
                    fin.bad,
                    fin.post_eco,
                )
            )
            fin.next_unit += take
            fin.qty -= take
            qty -= take
            done.append((fin.lot, take))
            if fin.qty == 0:
                queue.popleft()
        return done

    # ------------------------------------------------------------------ field

    def _field(
        self,
        pw: PlantWorld,
        day: dt.date,
        rng: np.random.Generator,
        faker: PiiFaker,
        out: dict[str, list[Record]],
    ) -> None:
        """Complaints and repairs of the devices in the field (shipped before today).

        Cost per day depends on the number of incidents, not on the devices in the field:
        incidents are drawn per group of alike batches, then a batch within the group.
        """
        state, s = self.states[pw.plant.code], self.signals
        state.in_field.expire(day, FIELD_DAYS)
        complaints, services = [], []
        lo, hi = s.cluster_window
        in_cluster = lo <= day <= hi
        groups = state.in_field.groups()
        if groups:
            keys = list(groups)
            weights = np.array(
                [
                    groups[k]
                    * (s.bad_lot_complaint_factor if k[1] else 1.0)
                    * (s.cluster_factor if in_cluster and k[0] == s.cluster_product else 1.0)
                    for k in keys
                ]
            )
            for _ in range(int(rng.poisson(weights.sum() * 0.0004))):
                b = state.in_field.pick(
                    keys[int(rng.choice(len(keys), p=weights / weights.sum()))], rng
                )
                if in_cluster and b.product == s.cluster_product and rng.random() < 0.85:
                    fault = s.cluster_fault
                elif b.bad:
                    fault = "LEAK"
                else:
                    fault = FAULTS[int(rng.integers(len(FAULTS)))]
                complaints.append(self._complaint(pw, b, fault, day, rng, faker))
            fail = np.array(
                [
                    groups[k] * (s.eco_failure_factor if k[2] else 1.0) * (3.0 if k[1] else 1.0)
                    for k in keys
                ]
            )
            for _ in range(int(rng.poisson(fail.sum() * 0.0006))):
                b = state.in_field.pick(keys[int(rng.choice(len(keys), p=fail / fail.sum()))], rng)
                fault = (
                    "NOISE"
                    if b.product == s.eco_product
                    else FAULTS[int(rng.integers(len(FAULTS)))]
                )
                services.append(self._service(pw, b, fault, day, rng, faker))
        out["crm__complaints"] = complaints
        out["svc__service_orders"] = services

    def _device(
        self, pw: PlantWorld, b: FieldBatch, rng: np.random.Generator, fault: str
    ) -> dict[str, str]:
        unit = b.first_unit + int(rng.integers(b.count))
        serial = f"{b.serial_base}{unit:04d}"
        gtin = self.world.products[b.product].gtin
        name = {"zh": "name_zh", "de": "name_de", "en": "name_en"}[pw.plant.lang]
        words = FAULT_WORDS[pw.plant.lang]
        return {
            "product": getattr(self.world.products[b.product], name),
            "gtin": gtin,
            "lot": b.lot,
            "serial": serial,
            "udi": f"(01){gtin}(17){b.expiry:%y%m%d}(10){b.lot}(21){serial}",
            "fault": words.get(fault, fault),
        }

    def _complaint(
        self,
        pw: PlantWorld,
        b: FieldBatch,
        fault: str,
        day: dt.date,
        rng: np.random.Generator,
        faker: PiiFaker,
    ) -> Record:
        device = self._device(pw, b, rng, fault)
        text, spans = narrative(
            faker, pw.plant.lang, "complaint", country=pw.plant.country, device=device, rng=rng
        )
        return {
            "complaint_id": f"{pw.plant.code}CMP{self.states[pw.plant.code].next('cmp'):07d}",
            "received_date": day,
            "customer_code": b.customer,
            "product_code": pw.product_codes[b.product],
            "udi": device["udi"],
            "lot": b.lot,
            "serial": device["serial"],
            "fault_code": local_fault(pw.plant, fault),
            "narrative": text,
            "patient_involved": any(word in text for word in ("患者", "Patient", "patient")),
            "_spans": {"narrative": spans},
            "_fault": fault,
            "_bad": b.bad,
        }

    def _service(
        self,
        pw: PlantWorld,
        b: FieldBatch,
        fault: str,
        day: dt.date,
        rng: np.random.Generator,
        faker: PiiFaker,
    ) -> Record:
        device = self._device(pw, b, rng, fault)
        text, spans = narrative(
            faker, pw.plant.lang, "service", country=pw.plant.country, device=device, rng=rng
        )
        hours = round(float(rng.uniform(0.5, 3.0)), 2)
        rate = 60 * FX_PER_EUR[pw.plant.currency]
        return {
            "service_id": f"{pw.plant.code}SV{self.states[pw.plant.code].next('sv'):07d}",
            "serial": device["serial"],
            "product_code": pw.product_codes[b.product],
            "customer_code": b.customer,
            "opened_date": day,
            "closed_date": day + dt.timedelta(days=int(rng.integers(1, 10))),
            "fault_code": local_fault(pw.plant, fault),
            "symptom_text": text,
            "parts_cost": round(float(rng.uniform(5, 80)) * FX_PER_EUR[pw.plant.currency], 2),
            "labour_hours": hours,
            "labour_cost": round(hours * rate, 2),
            "warranty": (day - b.shipped).days < 365,
            "returned": bool(rng.random() < 0.2),
            "_spans": {"symptom_text": spans},
            "_post_eco": b.post_eco,
            "_product": b.product,
        }

    # ------------------------------------------------------------------ stock

    def _on_hand(self, pw: PlantWorld, day: dt.date, out: dict[str, list[Record]]) -> None:
        state = self.states[pw.plant.code]
        rows = [
            {
                "snapshot_date": day,
                "material_code": pw.material_codes[m],
                "lot": lot.lot,
                "qty": round(lot.qty, 4),
                "uom": pw.plant.unit_style,
                "expiry_date": None,
            }
            for m in sorted(state.comp)
            for lot in state.comp[m]
            if lot.qty > 1e-9
        ]
        rows += [
            {
                "snapshot_date": day,
                "material_code": pw.product_codes[f.product],
                "lot": f.lot,
                "qty": float(f.qty),
                "uom": pw.plant.unit_style,
                "expiry_date": f.expiry,
            }
            for queue in state.finished.values()
            for f in queue
            if f.qty > 0
        ]
        out["wms__on_hand"] = rows
