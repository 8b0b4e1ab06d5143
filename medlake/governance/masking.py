"""Mask personal data in a DataFrame by column class, before silver writes it; collect the vault.

Structured columns are masked with Spark built-ins (`medlake.governance.operators`); free-text
columns go through Presidio in a vectorised pandas UDF whose analyzer is built once per
worker process. The pseudonym operator's clear values are returned as vault rows (one per
jurisdiction and token) for `medlake.governance.vault`; nothing clear stays in the masked frame,
including the delivered-text map `_text` that the quarantine keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import pandas as pd  # type: ignore[import-untyped]
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from medlake.governance.analyzer import detect_many
from medlake.governance.classes import Classes
from medlake.governance.keys import Keys
from medlake.governance.operators import (
    TOKEN,
    KeyColumns,
    Pseudonymiser,
    Target,
    hmac_pads,
    operator,
)

VAULT_ENTRY = T.StructType(
    [
        T.StructField("token", T.StringType()),
        T.StructField("entity_type", T.StringType()),
        T.StructField("value", T.StringType()),
    ]
)
FREE_TEXT_RESULT = T.StructType(
    [
        T.StructField("text", T.StringType()),
        T.StructField("found", T.ArrayType(VAULT_ENTRY)),
    ]
)
VAULT = "_vault"  # per row: the clear values behind its pseudonyms (never written to silver)


@dataclass(frozen=True)
class Masker:
    """Masks the columns of one run's plants with their jurisdictions' keys."""

    classes: Classes
    keys: Keys
    plant_jurisdiction: Mapping[str, str]

    def __repr__(self) -> str:
        return f"Masker({dict(self.plant_jurisdiction)})"

    def pseudonymiser(self, jurisdiction: str) -> Pseudonymiser:
        return Pseudonymiser(jurisdiction, self.keys[jurisdiction])

    def _jurisdiction(self, plant: Column) -> Column:
        """CASE over the row's plant; a plant without a jurisdiction stops the query."""
        expr: Column | None = None
        for jur in self._jurisdictions():
            plants = sorted(p for p, j in self.plant_jurisdiction.items() if j == jur)
            cond = plant.isin(plants)
            expr = F.when(cond, F.lit(jur)) if expr is None else expr.when(cond, F.lit(jur))
        assert expr is not None, "no plant to mask for"
        unmapped = F.concat(F.lit("plant "), plant, F.lit(" has no jurisdiction to mask with"))
        return expr.otherwise(F.raise_error(unmapped))

    def _jurisdictions(self) -> list[str]:
        return sorted(set(self.plant_jurisdiction.values()))

    def _with_keys(self, df: DataFrame, plant: Column) -> tuple[DataFrame, KeyColumns]:
        """Join each row to its jurisdiction's HMAC pads (broadcast data, not plan literals)."""
        rows = [(j, *hmac_pads(self.keys[j])) for j in self._jurisdictions()]
        keys = df.sparkSession.createDataFrame(
            [(j, bytearray(i), bytearray(o)) for j, i, o in rows],
            "__jur string, __ipad binary, __opad binary",
        )
        df = df.withColumn("__jur", self._jurisdiction(plant)).join(F.broadcast(keys), "__jur")
        return df, KeyColumns(F.col("__jur"), F.col("__ipad"), F.col("__opad"))

    def mask(
        self,
        df: DataFrame,
        columns: Mapping[str, tuple[str, str]],
        *,
        plant_column: str = "plant_id",
        text_map: str | None = None,
    ) -> DataFrame:
        """Mask `columns` (name -> (classification, Spark type)) and add `_vault`, the row's
        clear values behind its pseudonyms (see `vault_rows`). `text_map` names a
        map<string,string> of delivered texts by column whose entries are masked alike.

        Free text is analysed once per row: materialise (checkpoint) the result before
        reading both the masked columns and `vault_rows` from it.
        """
        plant = F.col(plant_column)
        masked: dict[str, Column] = {}
        entries: list[Column] = []
        df, keys = self._with_keys(df, plant)
        for name, (classification, data_type) in columns.items():
            cls = self.classes.get(classification)
            if cls.operator is None:
                continue
            if cls.operator == "detect":
                result = F.col(f"__ft_{name}")
                df = df.withColumn(
                    f"__ft_{name}", free_text_udf(self)(F.col(name), keys.jurisdiction)
                )
                masked[name] = result.getField("text")
                entries.append(result.getField("found"))
                continue
            op = operator(cls.operator)
            target = Target(cls.entity or classification, data_type, cls.params)
            masked[name] = op.column(F.col(name), target, keys).cast(data_type)
            if op.vaulted:
                entry = F.struct(
                    masked[name].alias("token"),
                    F.lit(target.entity).alias("entity_type"),
                    F.col(name).cast("string").alias("value"),
                )
                entries.append(F.array(entry))
        vault = (
            F.filter(F.concat(*entries), lambda e: e.getField("value").isNotNull())
            if entries
            else F.array().cast(T.ArrayType(VAULT_ENTRY))
        )
        df = df.withColumn(VAULT, vault)
        if text_map is not None and masked:
            df = df.withColumn(text_map, _mask_map(F.col(text_map), masked, columns))
        helpers = [c for c in df.columns if c.startswith(("__ft_", "__jur", "__ipad", "__opad"))]
        return df.withColumns(masked).drop(*helpers)

    def vault_rows(self, df: DataFrame, *, plant_column: str = "plant_id") -> DataFrame:
        """One row per (jurisdiction, token) with the clear value, from a masked frame."""
        return (
            df.select(
                self._jurisdiction(F.col(plant_column)).alias("jurisdiction"),
                F.explode(VAULT).alias("e"),
            )
            .select("jurisdiction", "e.token", "e.entity_type", "e.value")
            .dropDuplicates(["jurisdiction", "token"])
        )


def _mask_map(
    texts: Column, masked: Mapping[str, Column], columns: Mapping[str, tuple[str, str]]
) -> Column:
    """The delivered texts with each masked column's entry replaced by its masked value
    (as text); a personal column that is not a string loses its delivered text."""

    def entry(key: Column, value: Column) -> Column:
        expr: Column | None = None
        for name, column in masked.items():
            replacement = column.cast("string") if columns[name][1] == "string" else F.lit(None)
            cond = key == F.lit(name)
            expr = F.when(cond, replacement) if expr is None else expr.when(cond, replacement)
        assert expr is not None
        return expr.otherwise(value)

    return F.transform_values(texts, entry)


def free_text_udf(masker: Masker) -> Callable[..., Column]:
    """Presidio over a column of texts, by Arrow batches: masked text + vaulted findings."""
    free = masker.classes.free_text_entities
    keys = {j: masker.keys[j] for j in masker._jurisdictions()}

    @F.pandas_udf(FREE_TEXT_RESULT)  # type: ignore[attr-defined,untyped-decorator]
    def mask_texts(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:

        pseudonymisers = {j: Pseudonymiser(j, k) for j, k in keys.items()}
        for texts, jurisdictions in batches:
            findings = detect_many(texts.tolist())
            out_text: list[str | None] = []
            out_found: list[list[dict[str, str]]] = []
            for text, jur, found in zip(texts, jurisdictions, findings, strict=True):
                if text is None or not found:
                    out_text.append(text)
                    out_found.append([])
                    continue
                pieces, entries, pos = [], [], 0
                for f in sorted(found, key=lambda x: x.start):
                    if f.start < pos:
                        continue
                    masking = free.get(f.entity_type)
                    op = operator(masking.operator if masking else "redact")
                    target = Target(f.entity_type, "string", masking.params if masking else None)
                    value = text[f.start : f.end]
                    replaced = op.text(value, target, pseudonymisers[jur])
                    pieces += [text[pos : f.start], replaced]
                    pos = f.end
                    if op.vaulted and TOKEN.match(replaced):
                        entries.append(
                            {"token": replaced, "entity_type": f.entity_type, "value": value}
                        )
                pieces.append(text[pos:])
                out_text.append("".join(pieces))
                out_found.append(entries)
            yield pd.DataFrame({"text": out_text, "found": out_found})

    udf: Callable[..., Column] = mask_texts
    return udf
