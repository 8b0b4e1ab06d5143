"""Source contracts: every entity each plant delivers, its columns in the plant's language.

One table drives the generator's writers, `docs/sources.md` and the tests that check the
files against the documentation, so the three cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from medlake_simulator.plants import Plant

FieldType = Literal["string", "int", "decimal", "date", "datetime", "bool"]
Cadence = Literal["daily", "snapshot"]  # snapshot: full master extract in every delivery


@dataclass(frozen=True)
class SourceField:
    name: str  # canonical (group) name; the pipeline maps local names to it
    type: FieldType
    meaning: str
    zh: str
    de: str
    en: str
    pii: str | None = None  # entity type when the column holds personal data


@dataclass(frozen=True)
class Entity:
    system: str  # erp, mes, wms, qc, crm, svc, plm
    name: str
    description: str
    keys: tuple[str, ...]
    fields: tuple[SourceField, ...]
    cadence: Cadence = "daily"
    sequence: str | None = None  # column whose higher value supersedes an earlier row

    @property
    def key(self) -> str:
        return f"{self.system}__{self.name}"

    def field(self, name: str) -> SourceField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.key} has no field {name!r}")


def F(  # noqa: N802 - a compact constructor keeps the contract table readable
    name: str, type_: FieldType, meaning: str, zh: str, de: str, en: str, pii: str | None = None
) -> SourceField:
    return SourceField(name, type_, meaning, zh, de, en, pii)


def _camel(words: str) -> str:
    parts = re.split(r"[^A-Za-z0-9]+", words.strip())
    parts = [p for p in parts if p]
    return parts[0].lower() + "".join(p[:1].upper() + p[1:].lower() for p in parts[1:])


def _upper_snake(words: str) -> str:
    return "_".join(p.upper() for p in re.split(r"[^A-Za-z0-9]+", words.strip()) if p)


def local_name(plant: Plant, f: SourceField) -> str:
    """The column name this plant's system uses for canonical field `f`."""
    if plant.lang == "zh":
        return f.zh
    if plant.lang == "de":
        return f.de
    style = {"GW": _camel, "MN": _upper_snake}.get(plant.code)
    return style(f.en) if style else f.en


UPDATED = F(
    "updated_at",
    "datetime",
    "Last change in the source system (plant local time)",
    "更新时间",
    "Geändert am",
    "Updated At",
)
VERSION = F(
    "record_version",
    "int",
    "Version of the record; a re-sent record has a higher version",
    "版本号",
    "Version",
    "Record Version",
)

ENTITIES: tuple[Entity, ...] = (
    # ------------------------------------------------------------------ ERP
    Entity(
        "erp",
        "suppliers",
        "Supplier master as known to the plant",
        ("supplier_code",),
        (
            F(
                "supplier_code",
                "string",
                "Plant-local supplier code",
                "供应商编码",
                "Lieferantennummer",
                "Supplier Code",
            ),
            F(
                "supplier_name",
                "string",
                "Supplier name as spelled by the plant",
                "供应商名称",
                "Lieferantenname",
                "Supplier Name",
            ),
            F(
                "tax_id",
                "string",
                "Tax or registration number (missing for some suppliers)",
                "税号",
                "USt-IdNr",
                "Tax ID",
            ),
            F("country", "string", "ISO country code of the supplier", "国家", "Land", "Country"),
            F(
                "contact_name",
                "string",
                "Sales contact",
                "联系人",
                "Ansprechpartner",
                "Contact Name",
                "PERSON",
            ),
            F(
                "contact_phone",
                "string",
                "Contact phone",
                "联系电话",
                "Telefon",
                "Contact Phone",
                "PHONE_NUMBER",
            ),
            F(
                "contact_email",
                "string",
                "Contact e-mail",
                "邮箱",
                "E-Mail",
                "Contact Email",
                "EMAIL_ADDRESS",
            ),
            F(
                "payment_terms_days",
                "int",
                "Payment terms in days",
                "账期天数",
                "Zahlungsziel Tage",
                "Payment Terms Days",
            ),
            UPDATED,
        ),
        cadence="snapshot",
    ),
    Entity(
        "erp",
        "materials",
        "Material master: components and finished devices",
        ("material_code",),
        (
            F(
                "material_code",
                "string",
                "Plant-local material code",
                "物料编码",
                "Materialnummer",
                "Material Code",
            ),
            F(
                "description",
                "string",
                "Material description in the plant's language",
                "物料描述",
                "Materialbezeichnung",
                "Description",
            ),
            F("category", "string", "Material category", "物料类别", "Materialgruppe", "Category"),
            F("uom", "string", "Plant-local base unit", "单位", "Mengeneinheit", "UoM"),
            F(
                "std_lead_time_days",
                "int",
                "Planned replenishment lead time in days",
                "标准采购周期",
                "Planlieferzeit",
                "Std Lead Time Days",
            ),
            F(
                "global_ref",
                "string",
                "Group part number where the plant records it (often empty)",
                "集团料号",
                "Konzern-Teilenummer",
                "Global Ref",
            ),
            UPDATED,
        ),
        cadence="snapshot",
    ),
    Entity(
        "erp",
        "boms",
        "Bill of materials: components per finished device",
        ("product_code", "component_code"),
        (
            F(
                "product_code",
                "string",
                "Finished device material code",
                "成品编码",
                "Erzeugnis",
                "Product Code",
            ),
            F(
                "component_code",
                "string",
                "Component material code",
                "组件编码",
                "Komponente",
                "Component Code",
            ),
            F(
                "qty_per",
                "decimal",
                "Component quantity per finished unit, in the component's unit",
                "单位用量",
                "Menge je",
                "Qty Per",
            ),
            F("uom", "string", "Unit of qty_per", "单位", "Mengeneinheit", "UoM"),
            F(
                "valid_from",
                "date",
                "First day the line is valid",
                "生效日期",
                "Gültig ab",
                "Valid From",
            ),
        ),
        cadence="snapshot",
    ),
    Entity(
        "erp",
        "purchase_orders",
        "Purchase-order lines",
        ("po_number", "po_line"),
        (
            F(
                "po_number",
                "string",
                "Purchase-order number",
                "采购订单号",
                "Bestellnummer",
                "PO Number",
            ),
            F("po_line", "int", "Line number", "行号", "Position", "PO Line"),
            F(
                "supplier_code",
                "string",
                "Plant-local supplier code",
                "供应商编码",
                "Lieferantennummer",
                "Supplier Code",
            ),
            F(
                "material_code",
                "string",
                "Plant-local material code",
                "物料编码",
                "Materialnummer",
                "Material Code",
            ),
            F(
                "order_date",
                "date",
                "Order date (plant local)",
                "下单日期",
                "Bestelldatum",
                "Order Date",
            ),
            F(
                "due_date",
                "date",
                "Confirmed delivery date (plant local)",
                "交货日期",
                "Liefertermin",
                "Due Date",
            ),
            F(
                "ordered_qty",
                "decimal",
                "Ordered quantity in uom",
                "订购数量",
                "Bestellmenge",
                "Ordered Qty",
            ),
            F(
                "uom",
                "string",
                "Order unit (may differ from the base unit, e.g. BOX of 10)",
                "单位",
                "Mengeneinheit",
                "UoM",
            ),
            F("unit_price", "decimal", "Price per uom in currency", "单价", "Preis", "Unit Price"),
            F("currency", "string", "ISO currency", "币种", "Währung", "Currency"),
            VERSION,
            UPDATED,
        ),
        sequence="record_version",
    ),
    Entity(
        "erp",
        "goods_receipts",
        "Goods receipts against purchase-order lines",
        ("receipt_id",),
        (
            F(
                "receipt_id",
                "string",
                "Receipt document number",
                "入库单号",
                "Wareneingangsbeleg",
                "Receipt ID",
            ),
            F(
                "po_number",
                "string",
                "Purchase-order number",
                "采购订单号",
                "Bestellnummer",
                "PO Number",
            ),
            F("po_line", "int", "PO line", "行号", "Position", "PO Line"),
            F(
                "supplier_lot",
                "string",
                "Supplier's lot number",
                "供应商批号",
                "Lieferantencharge",
                "Supplier Lot",
            ),
            F(
                "receipt_date",
                "date",
                "Receipt date (plant local)",
                "收货日期",
                "Eingangsdatum",
                "Receipt Date",
            ),
            F(
                "received_qty",
                "decimal",
                "Received quantity in uom",
                "实收数量",
                "Eingangsmenge",
                "Received Qty",
            ),
            F("uom", "string", "Unit", "单位", "Mengeneinheit", "UoM"),
            F(
                "posted_at",
                "datetime",
                "Posting time (plant local)",
                "过账时间",
                "Buchungszeit",
                "Posted At",
            ),
        ),
    ),
    Entity(
        "erp",
        "supplier_invoices",
        "Supplier invoice lines",
        ("invoice_id", "po_line"),
        (
            F("invoice_id", "string", "Invoice number", "发票号", "Rechnungsnummer", "Invoice ID"),
            F(
                "po_number",
                "string",
                "Purchase-order number",
                "采购订单号",
                "Bestellnummer",
                "PO Number",
            ),
            F("po_line", "int", "PO line", "行号", "Position", "PO Line"),
            F("invoice_date", "date", "Invoice date", "开票日期", "Rechnungsdatum", "Invoice Date"),
            F("qty", "decimal", "Invoiced quantity in uom", "数量", "Menge", "Qty"),
            F("unit_price", "decimal", "Invoiced price per uom", "单价", "Preis", "Unit Price"),
            F("amount", "decimal", "Line amount", "金额", "Betrag", "Amount"),
            F("currency", "string", "ISO currency", "币种", "Währung", "Currency"),
        ),
    ),
    Entity(
        "erp",
        "standard_costs",
        "Standard unit cost per material",
        ("material_code", "valid_from"),
        (
            F(
                "material_code",
                "string",
                "Plant-local material code",
                "物料编码",
                "Materialnummer",
                "Material Code",
            ),
            F(
                "valid_from",
                "date",
                "First day the cost is valid",
                "生效日期",
                "Gültig ab",
                "Valid From",
            ),
            F(
                "std_unit_cost",
                "decimal",
                "Standard cost per base unit",
                "标准单价",
                "Standardpreis",
                "Std Unit Cost",
            ),
            F("currency", "string", "ISO currency", "币种", "Währung", "Currency"),
        ),
        cadence="snapshot",
    ),
    Entity(
        "erp",
        "fx_rates",
        "Daily exchange rates into the local currency",
        ("rate_date", "from_currency"),
        (
            F("rate_date", "date", "Rate date", "汇率日期", "Kursdatum", "Rate Date"),
            F(
                "from_currency",
                "string",
                "ISO currency converted from",
                "原币",
                "Von Währung",
                "From Currency",
            ),
            F(
                "to_currency",
                "string",
                "ISO currency converted to (local)",
                "本币",
                "Nach Währung",
                "To Currency",
            ),
            F(
                "rate",
                "decimal",
                "Units of to_currency per unit of from_currency",
                "汇率",
                "Kurs",
                "Rate",
            ),
        ),
    ),
    Entity(
        "erp",
        "customers",
        "Customers (hospitals, distributors) with a contact person",
        ("customer_code",),
        (
            F(
                "customer_code",
                "string",
                "Plant-local customer code",
                "客户编码",
                "Kundennummer",
                "Customer Code",
            ),
            F(
                "customer_name",
                "string",
                "Customer name",
                "客户名称",
                "Kundenname",
                "Customer Name",
            ),
            F(
                "customer_type",
                "string",
                "hospital or distributor (local words)",
                "客户类型",
                "Kundenart",
                "Customer Type",
            ),
            F("country", "string", "ISO country code", "国家", "Land", "Country"),
            F(
                "contact_name",
                "string",
                "Contact person",
                "联系人",
                "Ansprechpartner",
                "Contact Name",
                "PERSON",
            ),
            F(
                "contact_phone",
                "string",
                "Contact phone",
                "联系电话",
                "Telefon",
                "Contact Phone",
                "PHONE_NUMBER",
            ),
            F(
                "contact_email",
                "string",
                "Contact e-mail",
                "邮箱",
                "E-Mail",
                "Contact Email",
                "EMAIL_ADDRESS",
            ),
            UPDATED,
        ),
        cadence="snapshot",
    ),
    Entity(
        "erp",
        "sales_orders",
        "Sales-order lines",
        ("so_number", "so_line"),
        (
            F(
                "so_number",
                "string",
                "Sales-order number",
                "销售订单号",
                "Auftragsnummer",
                "SO Number",
            ),
            F("so_line", "int", "Line number", "行号", "Position", "SO Line"),
            F(
                "customer_code",
                "string",
                "Plant-local customer code",
                "客户编码",
                "Kundennummer",
                "Customer Code",
            ),
            F(
                "product_code",
                "string",
                "Finished device material code",
                "成品编码",
                "Erzeugnis",
                "Product Code",
            ),
            F("order_date", "date", "Order date", "下单日期", "Auftragsdatum", "Order Date"),
            F(
                "requested_date",
                "date",
                "Requested delivery date",
                "要求交期",
                "Wunschtermin",
                "Requested Date",
            ),
            F("qty", "decimal", "Ordered units", "数量", "Menge", "Qty"),
            F("unit_price", "decimal", "Price per unit", "单价", "Preis", "Unit Price"),
            F("currency", "string", "ISO currency", "币种", "Währung", "Currency"),
        ),
    ),
    # ------------------------------------------------------------------ MES
    Entity(
        "mes",
        "work_orders",
        "Production work orders",
        ("wo_number",),
        (
            F(
                "wo_number",
                "string",
                "Work-order number",
                "工单号",
                "Fertigungsauftrag",
                "WO Number",
            ),
            F(
                "product_code",
                "string",
                "Finished device material code",
                "成品编码",
                "Erzeugnis",
                "Product Code",
            ),
            F("planned_qty", "int", "Planned units", "计划数量", "Planmenge", "Planned Qty"),
            F("line_id", "string", "Production line", "产线", "Linie", "Line ID"),
            F("started_at", "datetime", "Start (plant local)", "开始时间", "Start", "Started At"),
            F("finished_at", "datetime", "End (plant local)", "结束时间", "Ende", "Finished At"),
            F("status", "string", "Status", "状态", "Status", "Status"),
        ),
    ),
    Entity(
        "mes",
        "production_lots",
        "Finished-device lots produced by work orders",
        ("lot_number",),
        (
            F(
                "lot_number",
                "string",
                "Finished lot number (UDI AI 10)",
                "批号",
                "Charge",
                "Lot Number",
            ),
            F(
                "wo_number",
                "string",
                "Work-order number",
                "工单号",
                "Fertigungsauftrag",
                "WO Number",
            ),
            F(
                "product_code",
                "string",
                "Finished device material code",
                "成品编码",
                "Erzeugnis",
                "Product Code",
            ),
            F("qty_started", "int", "Units started", "投产数量", "Gestartete Menge", "Qty Started"),
            F("qty_good", "int", "Units passed", "合格数量", "Gutmenge", "Qty Good"),
            F("qty_scrap", "int", "Units scrapped", "报废数量", "Ausschuss", "Qty Scrap"),
            F(
                "production_date",
                "date",
                "Production date (UDI AI 11)",
                "生产日期",
                "Herstelldatum",
                "Production Date",
            ),
            F(
                "expiry_date",
                "date",
                "Expiry date (UDI AI 17)",
                "有效期至",
                "Verfallsdatum",
                "Expiry Date",
            ),
        ),
    ),
    Entity(
        "mes",
        "lot_genealogy",
        "Component lots consumed into finished lots",
        ("finished_lot", "component_lot"),
        (
            F(
                "finished_lot",
                "string",
                "Finished lot number",
                "成品批号",
                "Fertigcharge",
                "Finished Lot",
            ),
            F(
                "component_code",
                "string",
                "Component material code",
                "组件编码",
                "Komponente",
                "Component Code",
            ),
            F(
                "component_lot",
                "string",
                "Consumed lot (the supplier lot received)",
                "组件批号",
                "Komponentencharge",
                "Component Lot",
            ),
            F(
                "qty_consumed",
                "decimal",
                "Quantity consumed in the component's base unit",
                "消耗数量",
                "Verbrauchsmenge",
                "Qty Consumed",
            ),
            F(
                "consumed_at",
                "datetime",
                "Consumption time (plant local)",
                "投料时间",
                "Verbrauchszeit",
                "Consumed At",
            ),
        ),
    ),
    Entity(
        "mes",
        "process_measurements",
        "Process parameter measurements per lot, step and equipment",
        ("measurement_id",),
        (
            F(
                "measurement_id",
                "string",
                "Measurement id",
                "测量编号",
                "Messungs-ID",
                "Measurement ID",
            ),
            F("lot_number", "string", "Finished lot number", "批号", "Charge", "Lot Number"),
            F("step", "string", "Process step", "工序", "Arbeitsgang", "Step"),
            F("equipment_id", "string", "Equipment", "设备编号", "Anlage", "Equipment ID"),
            F("parameter", "string", "Parameter name", "参数", "Parameter", "Parameter"),
            F("value", "decimal", "Measured value", "测量值", "Messwert", "Value"),
            F("lsl", "decimal", "Lower specification limit", "下限", "UGW", "LSL"),
            F("usl", "decimal", "Upper specification limit", "上限", "OGW", "USL"),
            F(
                "measured_at",
                "datetime",
                "Measurement time (plant local)",
                "测量时间",
                "Messzeit",
                "Measured At",
            ),
            F("operator_id", "string", "Operator", "操作员", "Werker", "Operator ID"),
        ),
    ),
    Entity(
        "mes",
        "operators",
        "Production operators",
        ("operator_id",),
        (
            F("operator_id", "string", "Operator id", "工号", "Personalnummer", "Operator ID"),
            F(
                "operator_name",
                "string",
                "Operator name",
                "姓名",
                "Name",
                "Operator Name",
                "PERSON",
            ),
            F("shift", "string", "Shift", "班次", "Schicht", "Shift"),
        ),
        cadence="snapshot",
    ),
    # ------------------------------------------------------------------ WMS
    Entity(
        "wms",
        "stock_movements",
        "Stock movements: receipt, issue, shipment, transfer, scrap",
        ("movement_id",),
        (
            F(
                "movement_id",
                "string",
                "Movement document",
                "移动单号",
                "Bewegungsnummer",
                "Movement ID",
            ),
            F(
                "movement_type",
                "string",
                "Movement type (local words)",
                "移动类型",
                "Bewegungsart",
                "Movement Type",
            ),
            F(
                "material_code",
                "string",
                "Plant-local material code",
                "物料编码",
                "Materialnummer",
                "Material Code",
            ),
            F("lot", "string", "Lot", "批号", "Charge", "Lot"),
            F("qty", "decimal", "Quantity (signed: issues negative)", "数量", "Menge", "Qty"),
            F("uom", "string", "Unit", "单位", "Mengeneinheit", "UoM"),
            F(
                "moved_at",
                "datetime",
                "Movement time (plant local)",
                "移动时间",
                "Buchungszeit",
                "Moved At",
            ),
        ),
    ),
    Entity(
        "wms",
        "on_hand",
        "On-hand stock by lot at the end of the day",
        ("snapshot_date", "material_code", "lot"),
        (
            F("snapshot_date", "date", "Snapshot date", "快照日期", "Stichtag", "Snapshot Date"),
            F(
                "material_code",
                "string",
                "Plant-local material code",
                "物料编码",
                "Materialnummer",
                "Material Code",
            ),
            F("lot", "string", "Lot", "批号", "Charge", "Lot"),
            F("qty", "decimal", "Quantity on hand in base unit", "库存数量", "Bestand", "Qty"),
            F("uom", "string", "Unit", "单位", "Mengeneinheit", "UoM"),
            F("expiry_date", "date", "Lot expiry date", "有效期至", "Verfallsdatum", "Expiry Date"),
        ),
    ),
    Entity(
        "wms",
        "shipments",
        "Shipped devices by lot and serial",
        ("shipment_id", "serial"),
        (
            F(
                "shipment_id",
                "string",
                "Shipment document",
                "发货单号",
                "Lieferschein",
                "Shipment ID",
            ),
            F(
                "so_number",
                "string",
                "Sales-order number",
                "销售订单号",
                "Auftragsnummer",
                "SO Number",
            ),
            F(
                "customer_code",
                "string",
                "Plant-local customer code",
                "客户编码",
                "Kundennummer",
                "Customer Code",
            ),
            F(
                "product_code",
                "string",
                "Finished device material code",
                "成品编码",
                "Erzeugnis",
                "Product Code",
            ),
            F("lot", "string", "Finished lot", "批号", "Charge", "Lot"),
            F(
                "serial",
                "string",
                "Device serial number (UDI AI 21)",
                "序列号",
                "Seriennummer",
                "Serial",
            ),
            F("ship_date", "date", "Ship date", "发货日期", "Versanddatum", "Ship Date"),
        ),
    ),
    # ------------------------------------------------------------------ QC
    Entity(
        "qc",
        "incoming_inspections",
        "Incoming inspection per supplier lot",
        ("inspection_id",),
        (
            F("inspection_id", "string", "Inspection id", "检验单号", "Prüflos", "Inspection ID"),
            F(
                "receipt_id",
                "string",
                "Goods receipt inspected",
                "入库单号",
                "Wareneingangsbeleg",
                "Receipt ID",
            ),
            F(
                "material_code",
                "string",
                "Plant-local material code",
                "物料编码",
                "Materialnummer",
                "Material Code",
            ),
            F(
                "supplier_lot",
                "string",
                "Supplier lot",
                "供应商批号",
                "Lieferantencharge",
                "Supplier Lot",
            ),
            F("inspected_qty", "decimal", "Sample size", "抽检数量", "Prüfmenge", "Inspected Qty"),
            F(
                "rejected_qty",
                "decimal",
                "Rejected in sample",
                "不良数量",
                "Fehlmenge",
                "Rejected Qty",
            ),
            F(
                "result",
                "string",
                "Accept or reject (local words)",
                "检验结果",
                "Entscheid",
                "Result",
            ),
            F(
                "defect_code",
                "string",
                "Plant-local defect code",
                "缺陷代码",
                "Fehlercode",
                "Defect Code",
            ),
            F(
                "inspected_at",
                "datetime",
                "Inspection time",
                "检验时间",
                "Prüfzeit",
                "Inspected At",
            ),
        ),
    ),
    Entity(
        "qc",
        "production_inspections",
        "In-process and final inspections per production lot",
        ("inspection_id",),
        (
            F("inspection_id", "string", "Inspection id", "检验单号", "Prüflos", "Inspection ID"),
            F("lot_number", "string", "Finished lot", "批号", "Charge", "Lot Number"),
            F(
                "stage",
                "string",
                "in_process or final (local words)",
                "检验阶段",
                "Prüfstufe",
                "Stage",
            ),
            F("inspected_qty", "int", "Units inspected", "检验数量", "Prüfmenge", "Inspected Qty"),
            F(
                "failed_qty",
                "int",
                "Units failed at first inspection",
                "不合格数量",
                "Fehlmenge",
                "Failed Qty",
            ),
            F(
                "defect_code",
                "string",
                "Plant-local defect code",
                "缺陷代码",
                "Fehlercode",
                "Defect Code",
            ),
            F(
                "inspected_at",
                "datetime",
                "Inspection time",
                "检验时间",
                "Prüfzeit",
                "Inspected At",
            ),
        ),
    ),
    Entity(
        "qc",
        "nonconformances",
        "Nonconformance reports",
        ("ncr_id",),
        (
            F("ncr_id", "string", "NCR number", "不合格报告号", "Abweichungsbericht", "NCR ID"),
            F("source", "string", "incoming, in_process or field", "来源", "Herkunft", "Source"),
            F("lot", "string", "Affected lot", "批号", "Charge", "Lot"),
            F(
                "material_code",
                "string",
                "Affected material",
                "物料编码",
                "Materialnummer",
                "Material Code",
            ),
            F(
                "defect_code",
                "string",
                "Plant-local defect code",
                "缺陷代码",
                "Fehlercode",
                "Defect Code",
            ),
            F("opened_date", "date", "Opened", "开立日期", "Eröffnet am", "Opened Date"),
        ),
    ),
    # ------------------------------------------------------------------ CRM
    Entity(
        "crm",
        "complaints",
        "Customer complaints with free-text narratives",
        ("complaint_id",),
        (
            F(
                "complaint_id",
                "string",
                "Complaint number",
                "投诉编号",
                "Reklamationsnummer",
                "Complaint ID",
            ),
            F("received_date", "date", "Received", "受理日期", "Eingangsdatum", "Received Date"),
            F(
                "customer_code",
                "string",
                "Plant-local customer code",
                "客户编码",
                "Kundennummer",
                "Customer Code",
            ),
            F(
                "product_code",
                "string",
                "Finished device material code",
                "成品编码",
                "Erzeugnis",
                "Product Code",
            ),
            F(
                "udi",
                "string",
                "UDI as reported: (01)GTIN(17)expiry(10)lot(21)serial",
                "UDI",
                "UDI",
                "UDI",
            ),
            F("lot", "string", "Device lot", "批号", "Charge", "Lot"),
            F("serial", "string", "Device serial", "序列号", "Seriennummer", "Serial"),
            F(
                "fault_code",
                "string",
                "Plant-local fault code",
                "故障代码",
                "Fehlerbild",
                "Fault Code",
            ),
            F(
                "narrative",
                "string",
                "Free-text description (contains personal data)",
                "投诉描述",
                "Beschreibung",
                "Narrative",
                "FREE_TEXT",
            ),
            F(
                "patient_involved",
                "bool",
                "Whether a patient was involved",
                "涉及患者",
                "Patient betroffen",
                "Patient Involved",
            ),
        ),
    ),
    # ------------------------------------------------------------------ service
    Entity(
        "svc",
        "service_orders",
        "Service orders and repairs per device serial",
        ("service_id",),
        (
            F("service_id", "string", "Service order", "维修单号", "Serviceauftrag", "Service ID"),
            F("serial", "string", "Device serial", "序列号", "Seriennummer", "Serial"),
            F(
                "product_code",
                "string",
                "Finished device material code",
                "成品编码",
                "Erzeugnis",
                "Product Code",
            ),
            F(
                "customer_code",
                "string",
                "Plant-local customer code",
                "客户编码",
                "Kundennummer",
                "Customer Code",
            ),
            F("opened_date", "date", "Opened", "报修日期", "Eröffnet am", "Opened Date"),
            F("closed_date", "date", "Closed", "完成日期", "Abgeschlossen am", "Closed Date"),
            F(
                "fault_code",
                "string",
                "Plant-local fault code",
                "故障代码",
                "Fehlerbild",
                "Fault Code",
            ),
            F(
                "symptom_text",
                "string",
                "Symptom text (may contain personal data)",
                "故障描述",
                "Symptombeschreibung",
                "Symptom Text",
                "FREE_TEXT",
            ),
            F(
                "parts_cost",
                "decimal",
                "Parts cost in local currency",
                "备件费用",
                "Materialkosten",
                "Parts Cost",
            ),
            F("labour_hours", "decimal", "Labour hours", "工时", "Arbeitsstunden", "Labour Hours"),
            F(
                "labour_cost",
                "decimal",
                "Labour cost in local currency",
                "人工费用",
                "Lohnkosten",
                "Labour Cost",
            ),
            F("warranty", "bool", "Repair under warranty", "保修", "Garantie", "Warranty"),
            F(
                "returned",
                "bool",
                "Device returned to the plant",
                "退回",
                "Rücksendung",
                "Returned",
            ),
        ),
    ),
    # ------------------------------------------------------------------ PLM
    Entity(
        "plm",
        "products",
        "Finished devices with GTIN and revision",
        ("product_code", "revision"),
        (
            F(
                "product_code",
                "string",
                "Finished device material code",
                "成品编码",
                "Erzeugnis",
                "Product Code",
            ),
            F("gtin", "string", "GS1 GTIN-14 (UDI-DI)", "GTIN", "GTIN", "GTIN"),
            F("product_name", "string", "Device name", "产品名称", "Produktname", "Product Name"),
            F("device_class", "string", "Regulatory class", "器械分类", "Klasse", "Device Class"),
            F("revision", "string", "Design revision", "版本", "Revision", "Revision"),
            F(
                "released_date",
                "date",
                "Revision release date",
                "发布日期",
                "Freigabedatum",
                "Released Date",
            ),
        ),
        cadence="snapshot",
    ),
    Entity(
        "plm",
        "ecos",
        "Engineering change orders",
        ("eco_number",),
        (
            F("eco_number", "string", "ECO number", "变更单号", "Änderungsnummer", "ECO Number"),
            F("product_code", "string", "Affected device", "成品编码", "Erzeugnis", "Product Code"),
            F(
                "affected_material",
                "string",
                "Affected component",
                "受影响物料",
                "Betroffenes Material",
                "Affected Material",
            ),
            F(
                "description",
                "string",
                "Change description",
                "变更描述",
                "Änderungsbeschreibung",
                "Description",
            ),
            F(
                "effective_date",
                "date",
                "Effective from",
                "生效日期",
                "Gültig ab",
                "Effective Date",
            ),
        ),
        cadence="snapshot",
    ),
)


def entity(key: str) -> Entity:
    for e in ENTITIES:
        if e.key == key:
            return e
    raise KeyError(f"unknown source entity {key!r}")
