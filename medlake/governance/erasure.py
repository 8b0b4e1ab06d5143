"""Erasure beyond the vault: every copy of a data subject's clear value, tombstoned.

Silver and gold hold only pseudonyms, but what the plants delivered still holds the clear
value: the landing files, bronze (`_record`, every source column as delivered) and the bronze
quarantine (`raw`). `sweep` finds every spelling of the subject's value that pseudonymises to
the same token (`operators.normalise`: case and spacing for names, e-mails and addresses;
separators for phone numbers), replaces it with `TOMBSTONE` in the landing files of the
jurisdiction's plants (each file rewritten in its own format and encoding, its checksum
updated in the delivery's `_control.csv` and in `_bronze_manifest`, so the next ingest sees
no re-delivery) and in the bronze rows (new Delta versions), and returns what it changed. The
caller (`subjects.erase`) then purges the old versions and removes the vault row last, so an
interrupted erasure is finished by running it again.

    >>> p = subject_pattern("PHONE_NUMBER", "+86 137 9068 8900")
    >>> p.python.sub(TOMBSTONE, "Tel. 86-13790688900, Fax 0755 1234")
    'Tel. [erased], Fax 0755 1234'
"""

from __future__ import annotations

import csv
import hashlib
import io as io_module
import json
import operator
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import regex  # type: ignore[import-untyped, unused-ignore]
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from medlake.bronze.ingest import CONTROL_FILE, MANIFEST, QUARANTINE, file_spec
from medlake.governance.operators import normalise
from medlake.io import CommitContext, TableIO
from medlake.sources import PlantSource

TOMBSTONE = "[erased]"
_DIGITS_ONLY = frozenset({"PHONE_NUMBER", "CREDIT_CARD"})
_COMPACT = frozenset({"CN_RESIDENT_ID", "IBAN_CODE"})
_SPECIAL = set("\\.^$|?*+()[]{}#&~-")
_CLASS_SPECIAL = set("\\]^-[&~")
# Spacing inside one line: a match never crosses a line break (a CSV row, a JSON line).
_SPACE = r"[ \t\x0B\f]"
# Between the digits of a phone number: spacing, punctuation, an extension word (ext. 12,
# x12, Durchwahl -34, 转8021); never a line break, a quote or a field delimiter.
_DIGIT_GAP = r"[^0-9\r\n\"',;|\t]{0,14}?"
_ENCODINGS = ("gb18030", "utf-8")  # escaped byte forms kept by whole-file refusals


class ErasureError(Exception):
    """An erasure cannot be completed; the message names the copy and what to do."""


def _literal(ch: str) -> str:
    return "\\" + ch if ch in _SPECIAL else ch


def _letter(ch: str) -> str:
    """One character in any case, as an explicit class: Python's `regex` and Java fold
    case differently (Turkish dotless i, sharp s), a class reads the same in both."""
    variants = {ch} | {v for v in (ch.lower(), ch.upper(), ch.title()) if len(v) == 1}
    if len(variants) == 1:
        return _literal(ch)
    return "[" + "".join("\\" + v if v in _CLASS_SPECIAL else v for v in sorted(variants)) + "]"


@dataclass(frozen=True)
class SubjectPattern:
    """Every spelling of one value that pseudonymises alike, plus the escaped forms a
    delivered copy may take (JSON `\\u` escapes, undecodable bytes kept as `\\x` escapes):
    one regex without flags, which Python's `regex` and Java (Spark) read alike."""

    entity: str
    value: str = field(repr=False)  # the clear value: never in a repr, a log or a message
    source: str = field(repr=False)

    @property
    def python(self) -> Any:
        return regex.compile(self.source)

    @property
    def java(self) -> str:
        return self.source


def _escaped_forms(value: str) -> list[str]:
    forms = {json.dumps(value)[1:-1]}  # JSON with non-ASCII as \uXXXX
    if '"' in value:  # a quote inside a quoted CSV cell is doubled: "john doe"@x -> ""john doe""@x
        forms.add(value.replace('"', '""'))
    for encoding in _ENCODINGS:  # bytes a reader kept as \xNN escapes (wrong encoding)
        try:
            raw = value.encode(encoding)
        except UnicodeEncodeError:
            continue
        forms.add(raw.decode("ascii", "backslashreplace"))
    forms.discard(value)
    return sorted(f for f in forms if f != value)


def subject_pattern(entity: str, value: str) -> SubjectPattern:
    """The pattern of a vaulted value: its digits with separators (and an extension word)
    between them for phone and card numbers; any case and spacing for the rest (an ASCII
    letter or digit at either end must not continue a longer word or number). Built from
    the value as delivered, so a letter whose lower case is two characters still matches."""
    if not normalise(entity, value):
        raise ErasureError(f"the vaulted value of this {entity} is empty after normalising")
    text = " ".join(value.split())
    if entity in _DIGITS_ONLY:
        digits = [ch for ch in text if ch.isascii() and ch.isdigit()]
        body = r"[+(]?" + _DIGIT_GAP.join(digits)
        main = rf"(?<![0-9]){body}(?![0-9])"
    else:
        if entity in _COMPACT:
            body = f"{_SPACE}*".join(_letter(ch) for ch in text if not ch.isspace())
        else:
            body = "".join(f"{_SPACE}+" if ch == " " else _letter(ch) for ch in text)
        first, last = text[0], text[-1]
        start = "(?<![A-Za-z0-9])" if first.isascii() and first.isalnum() else ""
        end = "(?![A-Za-z0-9])" if last.isascii() and last.isalnum() else ""
        main = start + body + end
    alternatives = [main] + ["".join(_literal(ch) for ch in f) for f in _escaped_forms(text)]
    return SubjectPattern(entity, value, "(?:" + "|".join(alternatives) + ")")


# ------------------------------------------------------------------------- landing files


@dataclass(frozen=True)
class Rewritten:
    """One landing file rewritten: where, its checksum before and after, values replaced."""

    relative: str  # <plant>/<date>/<file>, as bronze's _source_file
    old_sha256: str
    new_sha256: str
    replaced: int


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _holds_text(kind: pa.DataType) -> bool:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return True
    if pa.types.is_dictionary(kind):
        return _holds_text(kind.value_type)
    if pa.types.is_map(kind):
        return _holds_text(kind.key_type) or _holds_text(kind.item_type)
    if pa.types.is_struct(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return any(_holds_text(kind.field(i).type) for i in range(kind.num_fields))
    return False


def _replace(value: Any, pattern: Any) -> tuple[Any, int]:
    """`value` (a Parquet cell as Python: text, list, map entries, struct) with every match
    in its text tombstoned, and the number replaced."""
    if isinstance(value, str):
        new, n = pattern.subn(TOMBSTONE, value)
        return new, int(n)
    if isinstance(value, list | tuple):
        parts = [_replace(item, pattern) for item in value]
        items = [item for item, _ in parts]
        return (tuple(items) if isinstance(value, tuple) else items), sum(n for _, n in parts)
    if isinstance(value, dict):
        parts_by = {key: _replace(item, pattern) for key, item in value.items()}
        return {k: v for k, (v, _) in parts_by.items()}, sum(n for _, n in parts_by.values())
    return value, 0


def _rewrite_parquet(content: bytes, pattern: Any) -> tuple[bytes, int]:
    """Every column holding text rewritten (plain, dictionary-encoded, or inside lists, maps
    and structs); types, schema metadata and each column's codec kept."""
    source = pq.ParquetFile(pa.BufferReader(content))
    table = source.read()
    total, columns = 0, []
    for column in table.columns:
        kind = column.type
        if not _holds_text(kind):
            columns.append(column)
            continue
        values, n = _replace(column.to_pylist(), pattern)
        total += n
        if pa.types.is_dictionary(kind):
            columns.append(pa.array(values, type=kind.value_type).dictionary_encode().cast(kind))
        else:
            columns.append(pa.array(values, type=kind))
    if not total:
        return content, 0
    codecs = {}
    if source.metadata.num_row_groups:
        group = source.metadata.row_group(0)
        for i in range(group.num_columns):
            codec = group.column(i).compression.lower()
            codecs[group.column(i).path_in_schema] = "none" if codec == "uncompressed" else codec
    sink = pa.BufferOutputStream()
    pq.write_table(
        pa.Table.from_arrays(columns, schema=table.schema),
        sink,
        compression=codecs or "snappy",
    )
    return sink.getvalue().to_pybytes(), total


def rewrite_file(content: bytes, fmt: str, encoding: str, pattern: Any) -> tuple[bytes, int] | None:
    """The file with every match tombstoned and the number replaced; None when it cannot be
    read in its declared encoding (the caller reports it: nothing is guessed)."""
    if fmt == "parquet":
        return _rewrite_parquet(content, pattern)
    bom = content.startswith(b"\xef\xbb\xbf")
    # the declared encoding, else UTF-8 as ingest reads a file exported in the wrong one
    for candidate in (encoding, "utf-8") if not bom else ("utf-8-sig",):
        try:
            text = content.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
        break
    else:
        return None
    # Text formats (CSV, JSON lines) are rewritten in place: matches never cross a line, a
    # quote or a delimiter, and escaped forms (JSON's \\u) are matched as written, so every
    # other byte of the file stays as delivered.
    new, n = pattern.subn(TOMBSTONE, text)
    if not n:
        return content, 0
    return (b"\xef\xbb\xbf" if bom else b"") + new.encode(candidate.replace("-sig", "")), n


def _write_atomically(path: Path, content: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".erasing")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _formats(source: PlantSource) -> dict[str, tuple[str, str]]:
    """file name -> (format, encoding) of every file the plant delivers."""
    out = {}
    for entity, mapped in source.entities.items():
        spec = file_spec(source, entity)
        out[mapped.file] = (spec.format, spec.encoding)
    return out


@dataclass
class LandingSweep:
    rewritten: list[Rewritten] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # could not be decoded: not rewritten
    files_scanned: int = 0


def sweep_landing(
    landing: Path,
    sources: Mapping[str, PlantSource],
    pattern: SubjectPattern,
    progress: Callable[[str], None] | None = None,
    journal: Path | None = None,
) -> LandingSweep:
    """Tombstone the value in every delivered file of the plants (all delivery dates).

    `journal` (a JSON-lines file) gets each file's checksums before and after, written
    before the file is replaced: an erasure interrupted between the files and the tables
    still knows, when run again, which checksums to carry into the manifest. Files rewritten
    by an earlier, interrupted run come back from the journal."""
    result = LandingSweep()
    compiled = pattern.python
    for plant_id, source in sorted(sources.items()):
        folder = landing / plant_id
        if not folder.is_dir():
            continue
        formats = _formats(source)
        default = (source.delivery.format, source.delivery.encoding)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if path.name == CONTROL_FILE or path.name.startswith("."):
                continue
            result.files_scanned += 1
            relative = path.relative_to(landing).as_posix()
            try:
                content = path.read_bytes()
                fmt, encoding = formats.get(path.name, default)
                rewritten = rewrite_file(content, fmt, encoding, compiled)
            except (pa.ArrowException, OSError):
                rewritten = None
            if rewritten is None:
                result.unreadable.append(relative)
                continue
            new, replaced = rewritten
            if not replaced:
                continue
            done = Rewritten(relative, _sha(content), _sha(new), replaced)
            if journal is not None:
                _journal(journal, done)
            _write_atomically(path, new)
            result.rewritten.append(done)
            if progress:
                progress(f"landing {relative}: {replaced} value(s) tombstoned")
    if journal is not None and journal.is_file():  # an earlier run's rewrites
        seen = {r.relative for r in result.rewritten}
        for line in journal.read_text(encoding="utf-8").splitlines():
            entry = Rewritten(**json.loads(line))
            if entry.relative not in seen:
                result.rewritten.append(entry)
                seen.add(entry.relative)
    for folder in sorted({(landing / r.relative).parent for r in result.rewritten}):
        _update_control(folder, {r.old_sha256: r.new_sha256 for r in result.rewritten})
    return result


def _journal(path: Path, entry: Rewritten) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(entry.__dict__, sort_keys=True) + "\n"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def _update_control(folder: Path, shas: Mapping[str, str]) -> None:
    """The delivery's control totals vouch for the rewritten files' new checksums."""
    path = folder / CONTROL_FILE
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io_module.StringIO(text)))
    if not rows or "sha256" not in rows[0]:
        return
    changed = False
    for row in rows:
        new = shas.get((row.get("sha256") or "").strip().lower())
        if new:
            row["sha256"], changed = new, True
    if changed:
        out = io_module.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        _write_atomically(path, out.getvalue().encode("utf-8"))


# ------------------------------------------------------------------------- bronze tables


def _sha_column(column: str, shas: Mapping[str, str]) -> Column:
    """`column` with each rewritten file's old checksum replaced by its new one."""
    out: Column = F.col(column)
    for old, new in shas.items():
        out = F.when(F.col(column) == old, F.lit(new)).otherwise(out)
    return out


def _rewrite_where(
    io: TableIO,
    name: str,
    plants: Sequence[str],
    plant_column: str,
    matches: Callable[[DataFrame], Column],
    rewrite: Callable[[DataFrame], DataFrame],
    ctx: CommitContext,
) -> int:
    """Rewrite the rows of `plants` that `matches`, one commit over the months they sit in;
    the other rows of those partitions are carried over unchanged. Returns rows rewritten."""
    if io.version(name) is None:
        return 0
    spec = io.registry.get(name)
    current = io.read(name).where(F.col(plant_column).isin(list(plants)))
    hit = current.where(matches(current)).localCheckpoint()
    count = hit.count()
    if not count:
        hit.unpersist()
        return 0
    partition_columns = list(spec.partition_by)
    if not partition_columns:  # not partitioned: the plants' rows rewritten, others kept
        everything = io.read(name)
        mine = F.col(plant_column).isin(list(plants))
        io.overwrite(
            name, rewrite(everything.where(mine)).unionByName(everything.where(~mine)), ctx=ctx
        )
        hit.unpersist()
        return count
    partitions = {
        column: sorted({r[0] for r in hit.select(column).distinct().collect()})
        for column in partition_columns
    }
    scope = current
    for column, values in partitions.items():
        scope = scope.where(F.col(column).isin(values))
    io.replace_partitions(
        name,
        rewrite(scope),
        partition=partitions,
        where={plant_column: list(plants)} if plant_column not in partition_columns else None,
        ctx=ctx,
    )
    hit.unpersist()
    return count


def _holds(java: str, *, texts: Sequence[str] = (), maps: Sequence[str] = ()) -> Column:
    """Whether any of the text columns, or any value of the map<string,string> columns,
    matches the Java pattern (a null is no match)."""
    found = [F.coalesce(F.col(c).rlike(java), F.lit(False)) for c in texts] + [
        F.exists(F.map_values(c), lambda v: F.coalesce(v.rlike(java), F.lit(False))) for c in maps
    ]
    return reduce(operator.or_, found)


def _replace_in(
    df: DataFrame, java: str, by: str, *, texts: Sequence[str] = (), maps: Sequence[str] = ()
) -> DataFrame:
    """Every match in the text columns and in the values of the map columns replaced by `by`."""
    for c in texts:
        df = df.withColumn(c, F.regexp_replace(c, java, by))
    for c in maps:
        df = df.withColumn(c, F.transform_values(c, lambda _k, v: F.regexp_replace(v, java, by)))
    return df


def sweep_bronze(
    io: TableIO,
    tables: Iterable[str],
    plants: Sequence[str],
    pattern: SubjectPattern,
    shas: Mapping[str, str],
    ctx: CommitContext,
) -> dict[str, int]:
    """Tombstone the value in bronze `_record` values and the bronze quarantine's `raw`, and
    carry the rewritten files' new checksums into `_file_sha256` / `_bronze_manifest`."""
    java = pattern.java
    out: dict[str, int] = {}

    def record_hit(df: DataFrame) -> Column:
        found = _holds(java, maps=["_record"])
        return found | F.col("_file_sha256").isin(list(shas)) if shas else found

    def record_fix(df: DataFrame) -> DataFrame:
        fixed = _replace_in(df, java, TOMBSTONE, maps=["_record"])
        return fixed.withColumn("_file_sha256", _sha_column("_file_sha256", shas))

    for name in tables:
        rows = _rewrite_where(io, name, plants, "_plant_id", record_hit, record_fix, ctx)
        if rows:
            out[name] = rows

    def raw_hit(df: DataFrame) -> Column:
        found = _holds(java, texts=["raw"])
        return found | F.col("file_sha256").isin(list(shas)) if shas else found

    def raw_fix(df: DataFrame) -> DataFrame:
        fixed = _replace_in(df, java, TOMBSTONE, texts=["raw"])
        return fixed.withColumn("file_sha256", _sha_column("file_sha256", shas))

    rows = _rewrite_where(io, QUARANTINE, plants, "plant_id", raw_hit, raw_fix, ctx)
    if rows:
        out[QUARANTINE] = rows
    if shas:
        rows = _rewrite_where(
            io,
            MANIFEST,
            plants,
            "plant_id",
            lambda df: F.col("sha256").isin(list(shas)),
            lambda df: df.withColumn("sha256", _sha_column("sha256", shas)),
            ctx,
        )
        if rows:
            out[MANIFEST] = rows
    return out


def sweep_silver(
    io: TableIO,
    plants: Sequence[str],
    pattern: SubjectPattern,
    token: str,
    ctx: CommitContext,
) -> dict[str, int]:
    """Replace with the subject's token any clear spelling left in silver: in the free-text
    columns (a value the detector missed when the text was masked) and in the quarantined
    records (`silver.*__quarantine.record`). The token is what masking would have written,
    so the rows reconcile with the rest of silver."""
    java, out = pattern.java, {}
    for spec in io.registry:
        if spec.layer != "silver" or "plant_id" not in spec.column_names:
            continue
        texts = [
            c.name for c in spec.columns if c.classification == "free_text" and c.type == "string"
        ]
        maps = [c.name for c in spec.columns if c.type == "map<string,string>"]
        if not texts and not maps:
            continue

        def hit(df: DataFrame, texts: list[str] = texts, maps: list[str] = maps) -> Column:
            return _holds(java, texts=texts, maps=maps)

        def fix(df: DataFrame, texts: list[str] = texts, maps: list[str] = maps) -> DataFrame:
            return _replace_in(df, java, token, texts=texts, maps=maps)

        rows = _rewrite_where(io, spec.name, plants, "plant_id", hit, fix, ctx)
        if rows:
            out[spec.name] = rows
    return out
