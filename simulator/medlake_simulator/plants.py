"""The simulated group: six plants, each with its own language, formats and code systems."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Lang = Literal["zh", "de", "en"]
Country = Literal["CN", "MY", "IE", "DE", "US"]
FileFormat = Literal["csv", "jsonl", "parquet"]


@dataclass(frozen=True)
class Plant:
    """How one plant's systems deliver their extracts."""

    code: str  # group plant id
    name: str
    city: str
    country: Country
    region: str
    timezone: str
    currency: str
    lang: Lang
    encoding: str  # text files only
    file_format: FileFormat
    date_format: str  # strftime pattern of business dates in text files
    datetime_format: str  # strftime pattern of local timestamps in text files
    delimiter: str = ","
    decimal_comma: bool = False
    material_prefix: str = "M"  # local material code style
    supplier_prefix: str = "V"
    customer_prefix: str = "C"
    unit_style: Literal["EA", "PCS", "ST"] = "EA"  # local name of "each"
    size: float = 1.0  # relative volume of the plant

    def local_material(self, index: int) -> str:
        return f"{self.material_prefix}{index:05d}"

    def local_supplier(self, index: int) -> str:
        return f"{self.supplier_prefix}{index:04d}"

    def local_customer(self, index: int) -> str:
        return f"{self.customer_prefix}{index:05d}"


PLANTS: tuple[Plant, ...] = (
    Plant(
        code="SZ",
        name="Shenzhen",
        city="深圳",
        country="CN",
        region="APAC",
        timezone="Asia/Shanghai",
        currency="CNY",
        lang="zh",
        encoding="gb18030",
        file_format="csv",
        date_format="%Y/%m/%d",
        datetime_format="%Y/%m/%d %H:%M:%S",
        material_prefix="SZ-WL",
        supplier_prefix="GYS",
        customer_prefix="KH",
        unit_style="PCS",
        size=1.4,
    ),
    Plant(
        code="SU",
        name="Suzhou",
        city="苏州",
        country="CN",
        region="APAC",
        timezone="Asia/Shanghai",
        currency="CNY",
        lang="zh",
        encoding="gb18030",
        file_format="csv",
        date_format="%Y-%m-%d",
        datetime_format="%Y-%m-%d %H:%M:%S",
        material_prefix="WL",
        supplier_prefix="SU-V",
        customer_prefix="SUKH",
        unit_style="PCS",
        size=1.0,
    ),
    Plant(
        code="PN",
        name="Penang",
        city="Penang",
        country="MY",
        region="APAC",
        timezone="Asia/Kuala_Lumpur",
        currency="MYR",
        lang="en",
        encoding="utf-8",
        file_format="csv",
        date_format="%d/%m/%Y",
        datetime_format="%d/%m/%Y %H:%M",
        material_prefix="PNM",
        supplier_prefix="PNV",
        customer_prefix="PNC",
        unit_style="PCS",
        size=0.8,
    ),
    Plant(
        code="GW",
        name="Galway",
        city="Galway",
        country="IE",
        region="EMEA",
        timezone="Europe/Dublin",
        currency="EUR",
        lang="en",
        encoding="utf-8",
        file_format="jsonl",
        date_format="%Y-%m-%d",
        datetime_format="%Y-%m-%dT%H:%M:%S",
        material_prefix="GWY-",
        supplier_prefix="SUP-",
        customer_prefix="CUST-",
        unit_style="EA",
        size=1.0,
    ),
    Plant(
        code="TU",
        name="Tuttlingen",
        city="Tuttlingen",
        country="DE",
        region="EMEA",
        timezone="Europe/Berlin",
        currency="EUR",
        lang="de",
        encoding="utf-8",
        file_format="csv",
        date_format="%d.%m.%Y",
        datetime_format="%d.%m.%Y %H:%M:%S",
        delimiter=";",
        decimal_comma=True,
        material_prefix="MAT-",
        supplier_prefix="LIEF-",
        customer_prefix="KD-",
        unit_style="ST",
        size=0.9,
    ),
    Plant(
        code="MN",
        name="Minneapolis",
        city="Minneapolis",
        country="US",
        region="AMER",
        timezone="America/Chicago",
        currency="USD",
        lang="en",
        encoding="utf-8",
        file_format="parquet",
        date_format="%m/%d/%Y",
        datetime_format="%m/%d/%Y %I:%M %p",
        material_prefix="PN-",
        supplier_prefix="VEND",
        customer_prefix="ACCT",
        unit_style="EA",
        size=1.2,
    ),
)


def plant(code: str) -> Plant:
    for p in PLANTS:
        if p.code == code:
            return p
    raise KeyError(f"unknown plant {code!r}; plants: {', '.join(p.code for p in PLANTS)}")
