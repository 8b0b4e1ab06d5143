"""Score detected personal data against labelled spans: recall and precision per entity type.

Rules (pure Python, no Spark):
- A labelled span is *found* when predicted spans of the same entity type together cover at
  least `min_coverage` (default 90%) of its characters. Masking is what matters, so two
  adjacent predictions that jointly cover a value count, and a prediction that misses one
  character of a ten-character value still counts; a shorter value must be covered fully.
  `min_coverage=1.0` counts a value only when it is covered whole (the corpus of
  `medlake.governance.corpus` and `lakehouse governance quality` score this way).
- A predicted span is *correct* when it overlaps a labelled span of the same entity type.
- Every occurrence of a device identifier string in the text (GTIN, lot, serial, UDI) that any
  predicted span overlaps, whatever its type, is a *device hit*; there must be none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class SpanLike(Protocol):
    """What a prediction needs (`medlake.governance.analyzer.Finding` is one)."""

    @property
    def entity_type(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


Label = tuple[str, int, int, str]  # (entity_type, start, end, value)


@dataclass(frozen=True)
class LabelledText:
    """One text, its labelled personal values, and the device identifiers written in it."""

    text: str
    spans: Sequence[Label]
    device_ids: Sequence[str] = ()


@dataclass(frozen=True)
class TypeScore:
    entity_type: str
    labelled: int = 0
    found: int = 0
    predicted: int = 0
    correct: int = 0

    @property
    def recall(self) -> float | None:
        return self.found / self.labelled if self.labelled else None

    @property
    def precision(self) -> float | None:
        return self.correct / self.predicted if self.predicted else None


@dataclass(frozen=True)
class Report:
    texts: int
    per_type: dict[str, TypeScore]
    device_ids: int
    device_hits: int
    missed: list[tuple[str, str]] = field(default_factory=list)  # (type, value), first few
    spurious: list[tuple[str, str]] = field(default_factory=list)  # (type, predicted text)

    def failures(self, *, min_recall: float, min_precision: float) -> list[str]:
        """Human-readable threshold violations (empty when everything passes)."""
        out = [f"{self.device_hits} device identifiers overlapped"] if self.device_hits else []
        for t in self.per_type.values():
            if t.recall is not None and t.recall < min_recall:
                out.append(f"{t.entity_type}: recall {t.recall:.4f} < {min_recall}")
            if t.precision is not None and t.precision < min_precision:
                out.append(f"{t.entity_type}: precision {t.precision:.4f} < {min_precision}")
        return out

    def format(self) -> str:
        """A per-type table, then the device-identifier line."""

        def pct(x: float | None) -> str:
            return "   -  " if x is None else f"{x:6.4f}"

        lines = [
            f"{'entity type':<16} {'labelled':>8} {'found':>7} {'recall':>7} "
            f"{'predicted':>9} {'correct':>7} {'precision':>9}"
        ]
        for name in sorted(self.per_type):
            t = self.per_type[name]
            lines.append(
                f"{name:<16} {t.labelled:>8} {t.found:>7} {pct(t.recall):>7} "
                f"{t.predicted:>9} {t.correct:>7} {pct(t.precision):>9}"
            )
        lines.append(
            f"{self.texts} texts; device identifiers: {self.device_ids}, "
            f"overlapped by a prediction: {self.device_hits}"
        )
        return "\n".join(lines)


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def _covered(start: int, end: int, spans: Sequence[SpanLike]) -> int:
    """How many characters of [start, end) the spans cover (union)."""
    chars: set[int] = set()
    for s in spans:
        chars.update(range(max(start, s.start), min(end, s.end)))
    return len(chars)


def _occurrences(text: str, value: str) -> list[tuple[int, int]]:
    out, pos = [], text.find(value)
    while value and pos >= 0:
        out.append((pos, pos + len(value)))
        pos = text.find(value, pos + 1)
    return out


def score(
    records: Sequence[LabelledText],
    predictions: Sequence[Sequence[SpanLike]],
    *,
    min_coverage: float = 0.9,
    examples: int = 20,
) -> Report:
    """Compare predictions (one list per record, same order) with the labels."""
    if len(records) != len(predictions):
        raise ValueError(f"{len(records)} records but {len(predictions)} prediction lists")
    counts: dict[str, dict[str, int]] = {}
    missed: list[tuple[str, str]] = []
    spurious: list[tuple[str, str]] = []
    device_ids = device_hits = 0

    def bump(entity: str, key: str) -> None:
        counts.setdefault(entity, dict.fromkeys(("labelled", "found", "predicted", "correct"), 0))
        counts[entity][key] += 1

    for record, predicted in zip(records, predictions, strict=True):
        for entity, start, end, value in record.spans:
            bump(entity, "labelled")
            same = [p for p in predicted if p.entity_type == entity]
            if _covered(start, end, same) >= min_coverage * (end - start):
                bump(entity, "found")
            elif len(missed) < examples:
                missed.append((entity, value))
        for p in predicted:
            bump(p.entity_type, "predicted")
            if any(
                e == p.entity_type and _overlaps(s, t, p.start, p.end)
                for e, s, t, _ in record.spans
            ):
                bump(p.entity_type, "correct")
            elif len(spurious) < examples:
                spurious.append((p.entity_type, record.text[p.start : p.end]))
        for device_id in set(record.device_ids):
            for start, end in _occurrences(record.text, device_id):
                device_ids += 1
                device_hits += any(_overlaps(start, end, p.start, p.end) for p in predicted)
    per_type = {entity: TypeScore(entity, **c) for entity, c in counts.items()}
    return Report(len(records), per_type, device_ids, device_hits, missed, spurious)
