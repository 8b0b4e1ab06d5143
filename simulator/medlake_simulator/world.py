"""The group's master data: suppliers, materials, devices and BOMs, customers, equipment.

Built once from the seed; every plant sees the same real suppliers and materials under its
own local codes and spellings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from medlake_simulator.pii import PiiFaker, gtin_check_digit
from medlake_simulator.plants import PLANTS, Plant

# (English name, Chinese name, German spelling, country, has tax id)
_SUPPLIERS = [
    (
        "Shenzhen Precision Plastics Co., Ltd.",
        "深圳精密塑胶有限公司",
        "Shenzhen Precision Plastics",
        "CN",
        True,
    ),
    (
        "Suzhou Medical Tubing Co., Ltd.",
        "苏州医用导管有限公司",
        "Suzhou Medical Tubing",
        "CN",
        True,
    ),
    (
        "Dongguan Electronic Assembly Ltd.",
        "东莞电子组装有限公司",
        "Dongguan Electronic Assembly",
        "CN",
        True,
    ),
    ("Penang Circuit Works Sdn. Bhd.", "槟城电路有限公司", "Penang Circuit Works", "MY", True),
    (
        "Kedah Rubber Components Sdn Bhd",
        "吉打橡胶组件有限公司",
        "Kedah Rubber Components",
        "MY",
        False,
    ),
    (
        "Galway Sterile Packaging Ltd",
        "高威无菌包装有限公司",
        "Galway Sterile Packaging",
        "IE",
        True,
    ),
    ("Shannon Micro Motors Ltd.", "香农微电机有限公司", "Shannon Micro Motors", "IE", False),
    (
        "Schwarzwald Feinmechanik GmbH",
        "黑森林精密机械有限公司",
        "Schwarzwald Feinmechanik GmbH",
        "DE",
        True,
    ),
    (
        "Tuttlinger Stahlwaren GmbH",
        "图特林根钢制品有限公司",
        "Tuttlinger Stahlwaren GmbH",
        "DE",
        True,
    ),
    ("Bodensee Sensorik AG", "博登湖传感器股份公司", "Bodensee Sensorik AG", "DE", True),
    (
        "Minnesota Battery Systems Inc.",
        "明尼苏达电池系统公司",
        "Minnesota Battery Systems Inc.",
        "US",
        True,
    ),
    ("Great Lakes Silicone Inc", "五大湖硅胶公司", "Great Lakes Silicone Inc", "US", False),
    (
        "Ningbo Needle Manufacturing Co., Ltd.",
        "宁波针头制造有限公司",
        "Ningbo Needle Manufacturing",
        "CN",
        True,
    ),
    ("Twin Cities Labels LLC", "双城标签公司", "Twin Cities Labels LLC", "US", True),
]

# (key, English description, Chinese, German, category, base unit, base price EUR, lead days)
_MATERIALS = [
    ("housing", "Pump housing, PC", "泵外壳（PC）", "Pumpengehäuse PC", "plastic", 3.20, 14),
    ("cover", "Front cover, ABS", "前盖（ABS）", "Frontabdeckung ABS", "plastic", 1.10, 14),
    ("tubing", "Infusion tubing set", "输液管路组件", "Infusionsschlauchset", "tubing", 0.85, 10),
    ("valve", "Check valve", "单向阀", "Rückschlagventil", "tubing", 0.40, 12),
    ("pcb", "Controller PCB assembly", "控制板组件", "Steuerplatine", "electronics", 18.50, 30),
    ("display", "LCD display module", "液晶显示模块", "LCD-Anzeigemodul", "electronics", 9.80, 28),
    ("sensor", "Pressure sensor", "压力传感器", "Drucksensor", "electronics", 6.40, 25),
    ("battery", "Li-ion battery pack", "锂电池组", "Li-Ionen-Akku", "electronics", 12.00, 35),
    ("motor", "Stepper micro motor", "步进微电机", "Schrittmotor", "electromech", 7.60, 30),
    ("seal", "Silicone seal ring", "硅胶密封圈", "Silikondichtring", "rubber", 0.12, 12),
    ("gasket", "EPDM gasket", "三元乙丙垫片", "EPDM-Dichtung", "rubber", 0.08, 12),
    ("needle", "Stainless needle 21G", "不锈钢针头21G", "Edelstahlkanüle 21G", "metal", 0.05, 20),
    ("blade", "Scalpel blade", "手术刀片", "Skalpellklinge", "metal", 0.30, 21),
    (
        "handle",
        "Instrument handle, steel",
        "器械手柄（钢）",
        "Instrumentengriff Stahl",
        "metal",
        4.20,
        21,
    ),
    ("screw", "M2 screw", "M2螺钉", "Schraube M2", "metal", 0.01, 7),
    ("pouch", "Sterile pouch", "无菌包装袋", "Sterilbeutel", "packaging", 0.20, 10),
    ("carton", "Shipping carton", "包装纸箱", "Versandkarton", "packaging", 0.35, 7),
    ("label", "UDI label", "UDI标签", "UDI-Etikett", "packaging", 0.02, 7),
    (
        "ifu",
        "Instructions for use leaflet",
        "使用说明书",
        "Gebrauchsanweisung",
        "packaging",
        0.04,
        7,
    ),
    ("cuff", "Blood-pressure cuff", "血压袖带", "Blutdruckmanschette", "textile", 2.60, 18),
]
_MATERIAL_SUPPLIERS = {  # material key -> supplier indexes able to supply it
    "housing": [0, 11],
    "cover": [0],
    "tubing": [1, 4],
    "valve": [1],
    "pcb": [2, 3],
    "display": [2],
    "sensor": [9, 3],
    "battery": [10],
    "motor": [6],
    "seal": [11, 4],
    "gasket": [4],
    "needle": [12, 8],
    "blade": [8],
    "handle": [8, 7],
    "screw": [7, 0],
    "pouch": [5],
    "carton": [5, 13],
    "label": [13, 5],
    "ifu": [13],
    "cuff": [1, 4],
}
# (key, English name, Chinese, German, class, components with qty per unit)
_PRODUCTS = [
    (
        "pump",
        "Infusion Pump IP-200",
        "输液泵IP-200",
        "Infusionspumpe IP-200",
        "IIb",
        {
            "housing": 1,
            "cover": 1,
            "pcb": 1,
            "display": 1,
            "sensor": 1,
            "battery": 1,
            "motor": 1,
            "seal": 2,
            "screw": 8,
            "label": 1,
            "carton": 1,
            "ifu": 1,
        },
    ),
    (
        "monitor",
        "Patient Monitor PM-50",
        "病人监护仪PM-50",
        "Patientenmonitor PM-50",
        "IIa",
        {
            "housing": 1,
            "pcb": 1,
            "display": 1,
            "sensor": 2,
            "battery": 1,
            "gasket": 2,
            "screw": 6,
            "label": 1,
            "carton": 1,
            "ifu": 1,
        },
    ),
    (
        "bp",
        "BP Monitor BP-10",
        "电子血压计BP-10",
        "Blutdruckmessgerät BP-10",
        "IIa",
        {
            "cover": 1,
            "pcb": 1,
            "sensor": 1,
            "cuff": 1,
            "gasket": 1,
            "screw": 4,
            "label": 1,
            "carton": 1,
            "ifu": 1,
        },
    ),
    (
        "iv_set",
        "IV Administration Set",
        "一次性输液器",
        "Infusionsbesteck",
        "IIa",
        {"tubing": 1, "valve": 1, "needle": 1, "pouch": 1, "label": 1},
    ),
    (
        "scalpel",
        "Safety Scalpel SS-11",
        "安全手术刀SS-11",
        "Sicherheitsskalpell SS-11",
        "I",
        {"blade": 1, "handle": 1, "pouch": 1, "label": 1},
    ),
    (
        "forceps",
        "Surgical Forceps SF-3",
        "手术镊SF-3",
        "Chirurgische Pinzette SF-3",
        "I",
        {"handle": 2, "screw": 1, "pouch": 1, "label": 1, "ifu": 1},
    ),
]
_PLANT_PRODUCTS = {
    "SZ": ["pump", "monitor", "bp"],
    "SU": ["iv_set", "pump"],
    "PN": ["monitor", "bp"],
    "GW": ["iv_set", "pump"],
    "TU": ["scalpel", "forceps"],
    "MN": ["pump", "monitor"],
}
_CITIES = {
    "CN": ["北京", "上海", "广州", "深圳", "苏州", "杭州", "南京", "成都", "武汉", "西安"],
    "MY": ["Kuala Lumpur", "George Town", "Ipoh", "Johor Bahru", "Kuching"],
    "IE": ["Dublin", "Galway", "Cork", "Limerick", "Waterford"],
    "DE": ["Stuttgart", "Freiburg", "München", "Ulm", "Konstanz", "Tübingen"],
    "US": ["Minneapolis", "Saint Paul", "Rochester", "Chicago", "Madison"],
}


@dataclass(frozen=True)
class Supplier:
    index: int
    name_en: str
    name_zh: str
    name_de: str
    country: str
    tax_id: str | None
    on_time: float  # probability a receipt lands within tolerance
    lead_sd: float  # days


@dataclass(frozen=True)
class Material:
    index: int
    key: str
    desc_en: str
    desc_zh: str
    desc_de: str
    category: str
    price_eur: float
    lead_days: int
    suppliers: tuple[int, ...]


@dataclass(frozen=True)
class Product:
    index: int
    key: str
    name_en: str
    name_zh: str
    name_de: str
    device_class: str
    gtin: str
    bom: Mapping[str, float]


@dataclass(frozen=True)
class Customer:
    code: str
    name: str
    kind: str
    country: str
    contact_name: str
    contact_phone: str
    contact_email: str


@dataclass
class PlantWorld:
    plant: Plant
    supplier_indexes: list[int]
    supplier_codes: dict[int, str]
    supplier_names: dict[int, str]
    material_codes: dict[str, str]
    product_codes: dict[str, str]
    products: list[str]
    customers: list[Customer]
    operators: list[tuple[str, str, str]]  # id, name, shift
    equipment: list[str]
    lines: list[str]
    box_materials: set[str] = field(default_factory=set)  # bought in BOX of 10


@dataclass
class World:
    start: dt.date
    suppliers: list[Supplier]
    materials: dict[str, Material]
    products: dict[str, Product]
    plants: dict[str, PlantWorld]


def _gtin(company_prefix: str, item: int) -> str:
    first13 = f"0{company_prefix}{item:0{12 - len(company_prefix)}d}"
    return first13 + gtin_check_digit(first13)


def _supplier_name(plant: Plant, s: Supplier, rng: np.random.Generator) -> str:
    if plant.lang == "zh":
        return s.name_zh
    if plant.lang == "de":
        return s.name_de
    variants = [
        s.name_en,
        s.name_en.upper().replace(",", "").replace(".", ""),
        s.name_en.replace("Ltd.", "Limited").replace("Inc.", "Incorporated"),
    ]
    return variants[int(rng.integers(len(variants)))]


def build_world(seed: int, start: dt.date, scale: float) -> World:
    rng = np.random.default_rng([seed, 1])
    faker = PiiFaker(np.random.default_rng([seed, 2]))
    suppliers = []
    for i, (en, zh, de, country, has_tax) in enumerate(_SUPPLIERS):
        tax = None
        if has_tax:
            tax = {
                "CN": f"91{rng.integers(10**15, 10**16)}X"[:18],
                "MY": f"C{rng.integers(10**9, 10**10)}",
                "IE": f"IE{rng.integers(10**6, 10**7)}W",
                "DE": f"DE{rng.integers(10**8, 10**9)}",
                "US": f"{rng.integers(10, 99)}-{rng.integers(10**6, 10**7)}",
            }[country]
        suppliers.append(
            Supplier(
                i,
                en,
                zh,
                de,
                country,
                tax,
                float(rng.uniform(0.88, 0.98)),
                float(rng.uniform(1.0, 3.0)),
            )
        )
    materials = {
        key: Material(i, key, en, zh, de, cat, price, lead, tuple(_MATERIAL_SUPPLIERS[key]))
        for i, (key, en, zh, de, cat, price, lead) in enumerate(_MATERIALS)
    }
    products = {
        key: Product(i, key, en, zh, de, cls, _gtin("6912345", 100 + i), bom)
        for i, (key, en, zh, de, cls, bom) in enumerate(_PRODUCTS)
    }
    plants: dict[str, PlantWorld] = {}
    for p_index, plant in enumerate(PLANTS):
        prng = np.random.default_rng([seed, 3, p_index])
        needed = sorted({m for prod in _PLANT_PRODUCTS[plant.code] for m in products[prod].bom})
        supplier_indexes = sorted({s for m in needed for s in materials[m].suppliers})
        order = prng.permutation(len(supplier_indexes))
        supplier_codes = {
            s: plant.local_supplier(10 + int(order[k]) * 7) for k, s in enumerate(supplier_indexes)
        }
        m_order = prng.permutation(len(materials))
        material_codes = {
            m.key: plant.local_material(1000 + int(m_order[m.index]) * 3)
            for m in materials.values()
        }
        product_codes = {
            key: plant.local_material(9000 + prod.index) for key, prod in products.items()
        }
        n_customers = max(6, int(20 * scale * plant.size))
        customers = []
        for c in range(n_customers):
            lang = plant.lang
            contact = faker.person_name(lang)
            city = _CITIES[plant.country][c % len(_CITIES[plant.country])]
            kind = "hospital" if c % 3 else "distributor"
            if lang == "zh":
                name = (
                    f"{city}市第{c + 1}人民医院"
                    if kind == "hospital"
                    else f"{city}医疗器械经销有限公司{c + 1}"
                )
            elif lang == "de":
                name = (
                    f"Klinikum {city} {c + 1}"
                    if kind == "hospital"
                    else f"Medizintechnik Handel {city} GmbH {c + 1}"
                )
            else:
                name = (
                    f"{city} General Hospital {c + 1}"
                    if kind == "hospital"
                    else f"{city} Medical Supplies {c + 1}"
                )
            customers.append(
                Customer(
                    plant.local_customer(100 + c),
                    name,
                    kind,
                    plant.country,
                    contact,
                    faker.phone(plant.country),
                    faker.email(contact if lang != "zh" else None),
                )
            )
        operators = [
            (
                f"{plant.code}{prng.integers(10000, 99999)}",
                faker.person_name(plant.lang),
                "ABC"[k % 3],
            )
            for k in range(max(6, int(12 * plant.size)))
        ]
        equipment = [f"{plant.code}-EQ-{k:02d}" for k in range(1, 6)]
        lines = [f"{plant.code}-L{k}" for k in range(1, 3)]
        box = {
            m for m in needed if materials[m].price_eur < 0.5 and plant.code in ("PN", "MN", "SU")
        }
        plants[plant.code] = PlantWorld(
            plant,
            supplier_indexes,
            supplier_codes,
            {i: _supplier_name(plant, suppliers[i], prng) for i in supplier_indexes},
            material_codes,
            product_codes,
            list(_PLANT_PRODUCTS[plant.code]),
            customers,
            operators,
            equipment,
            lines,
            box,
        )
    return World(start, suppliers, materials, products, plants)
