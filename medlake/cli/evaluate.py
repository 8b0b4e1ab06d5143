"""`lakehouse governance evaluate` (the simulator's labelled narratives) and `quality` (the corpus).

Reads the delivered complaint narratives and service symptom texts of every plant (with the
plant's own reader and contract, as ingestion would), the simulator's label file of every
planted personal value, and the device identifiers delivered in the same rows (UDI, the
GTIN inside it, lot, serial) or written in the text (order and complaint numbers, dates);
runs the analyzer and prints recall and precision per entity
type and how many device identifiers a finding touched. Exits 1 when any type falls below
the thresholds or any device identifier was hit.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlake.config import ConfigError, Settings
from medlake.governance.evaluate import LabelledText, score
from medlake.sources import load_sources

FREE_TEXT = {"crm__complaints": "narrative", "svc__service_orders": "symptom_text"}
DEVICE_COLUMNS = ("udi", "lot", "serial", "complaint_id", "service_order_id", "product_code")
_GTIN = re.compile(r"\(01\)(\d{14})")
# identifiers and dates the narratives carry besides the row's columns: order numbers, dates
_IN_TEXT = re.compile(
    r"\b(?:PO|WO|CMP)-\d{4}-\d{4,5}\b"
    r"|\d{4}-\d{2}-\d{2}|\d{2}\.\d{2}\.\d{4}|\d{4}年\d{1,2}月\d{1,2}日"
    r"|\b\d{1,2} (?:January|February|March|April|May|June|July|August|September|October"
    r"|November|December) \d{4}\b"
)


@dataclass
class Narrative:
    file: str
    row: int
    text: str
    labels: list[tuple[str, int, int, str]] = field(default_factory=list)  # type, start, end, value
    devices: list[str] = field(default_factory=list)


def load_narratives(landing: Path, conf_dir: Path) -> list[Narrative]:
    """Every delivered free text with its labelled spans and the device ids in its row."""

    labels: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    folder = landing / "_truth" / "pii_labels"
    if not folder.is_dir():
        raise ConfigError(
            f"{folder}: no label files; generate the simulator's data first "
            "(medlake-sim generate --out ...) and pass its folder with --landing"
        )
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            label = json.loads(line)
            labels[(label["file"], label["row"], label["column"])].append(label)
    out: list[Narrative] = []
    # lazy: pandas and Presidio cost seconds at every `lakehouse` start; only this command reads
    from medlake.bronze.ingest import file_spec  # noqa: PLC0415 - see above
    from medlake.bronze.readers import read_file  # noqa: PLC0415 - see above

    for plant, source in sorted(load_sources(conf_dir / "sources").items()):
        for entity, canonical in FREE_TEXT.items():
            if entity not in source.entities:
                continue
            local = source.entities[entity].targets
            spec = file_spec(source, entity)
            for path in sorted((landing / plant).glob(f"*/{entity}.*")):
                relative = path.relative_to(landing).as_posix()
                parsed = read_file(path.read_bytes(), spec)
                for number, record in parsed.rows:
                    text = record.get(local.get(canonical, ""))
                    if not text:
                        continue
                    devices = [
                        v.strip()
                        for c in DEVICE_COLUMNS
                        if (v := record.get(local.get(c, ""))) and v.strip() in text
                    ]
                    devices += _GTIN.findall(text) + _IN_TEXT.findall(text)
                    spans = labels.get((relative, number, local[canonical]), [])
                    out.append(
                        Narrative(
                            relative,
                            number,
                            text,
                            [(s["entity_type"], s["start"], s["end"], s["value"]) for s in spans],
                            devices,
                        )
                    )
    return out


def evaluate(landing: Path, conf_dir: Path) -> Any:
    """The detection report (`medlake.governance.evaluate.Report`) on the delivered narratives."""

    narratives = load_narratives(landing, conf_dir)
    if not narratives:
        raise ConfigError(f"{landing}: no complaint or service texts delivered")
    from medlake.governance.analyzer import detect_many  # noqa: PLC0415 - Presidio: seconds

    records = [LabelledText(n.text, n.labels, n.devices) for n in narratives]
    return score(records, detect_many([n.text for n in narratives]))


def add_cli(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="recall and precision of personal-data detection on the simulator's narratives",
        description="Run the analyzer over every delivered complaint narrative and service "
        "text of the simulator's data and score it against the label file (_truth/pii_labels): "
        "recall and precision per entity type, and device identifiers touched (must be 0).",
    )
    p.add_argument("--landing", help="simulator output folder (default: landing.root in conf)")
    p.add_argument("--min-recall", type=float, default=0.98)
    p.add_argument("--min-precision", type=float, default=0.9)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    landing = Path(args.landing or settings.resolve(settings.landing.root))
    report = evaluate(landing, settings.conf_dir)
    print(report.format())
    failures = report.failures(min_recall=args.min_recall, min_precision=args.min_precision)
    for failure in failures:
        print(f"below target: {failure}")
    return 1 if failures else 0


def add_quality_cli(sub: Any) -> None:
    p = sub.add_parser(
        "quality",
        help="recall and precision of personal-data detection on the adversarial corpus",
        description="Generate the seeded adversarial corpus (medlake.governance.corpus: zh/de/en "
        "texts with rare surnames, honorifics, IDN and quoted e-mail addresses, phone "
        "extensions, lot numbers shaped like phone numbers ...), run the analyzer on it and "
        "score it: a planted value counts as found only when a finding covers all of it. "
        "Exits 1 when any type falls below the thresholds or any device identifier was hit.",
    )
    p.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    p.add_argument("--texts", type=int, default=1200, help="number of texts (default 1200)")
    p.add_argument("--min-recall", type=float, default=0.995)
    p.add_argument("--min-precision", type=float, default=0.98)
    p.set_defaults(func=cmd_quality)


def quality(seed: int, texts: int) -> Any:
    """The detection report (`medlake.governance.evaluate.Report`) on the generated corpus."""
    from medlake.governance.analyzer import detect_many  # noqa: PLC0415 - Presidio: seconds
    from medlake.governance.corpus import generate  # noqa: PLC0415 - only this command

    records = generate(seed, texts)
    return score(records, detect_many([r.text for r in records]), min_coverage=1.0)


def cmd_quality(args: argparse.Namespace, settings: Settings) -> int:
    if args.texts < 1:
        raise ConfigError(f"--texts {args.texts}: give at least 1 text")
    report = quality(args.seed, args.texts)
    print(f"corpus seed {args.seed}, {args.texts} texts; a value is found when fully covered")
    print(report.format())
    failures = report.failures(min_recall=args.min_recall, min_precision=args.min_precision)
    for failure in failures:
        print(f"below target: {failure}")
    return 1 if failures else 0
