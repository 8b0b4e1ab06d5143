"""Benchmark: Presidio on complaint narratives, and structured masking, each at two sizes.

Narratives per second per core: the simulator's complaint and service texts (all languages
and plants) through `medlake.governance.analyzer.detect_many` in one process (one core), against a
baseline of Presidio's `AnalyzerEngine.analyze` called on every text without the
pre-filter; then the same texts masked in Spark (`medlake.governance.masking`, a vectorised pandas
UDF on local[2]), per core. Structured masking in rows per second: contact names, phones
and e-mails pseudonymised with Spark built-ins (keyed HMAC from `sha2`), against a baseline
of a row-at-a-time Python UDF computing the same HMAC.

    python -m bench.governance [--narratives 2000,20000] [--rows 200000,2000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import time
from typing import Any

import numpy as np

from bench.common import machine, write_section

KEY = bytes(range(32))
# The figures before detection by class (issue 20), measured the same way: kept beside the new.
PREVIOUS = (
    "Previous run 2026-11-25, before detection by class (recognizers of then): detect_many "
    "1,629/s (2,000 narratives) and 1,485/s (20,000); masked in Spark 587 and 1,541 per core."
)


def narratives(n: int, seed: int = 7) -> list[str]:
    """Complaint and service texts as the simulator writes them, across languages and plants."""
    from medlake_simulator.pii import PiiFaker, narrative

    rng = np.random.default_rng(seed)
    faker = PiiFaker(np.random.default_rng(seed + 1))
    langs = [("zh", "CN"), ("en", "MY"), ("en", "IE"), ("de", "DE"), ("en", "US")]
    device = {
        "product": "Infusion set IV-200",
        "gtin": "04012345678901",
        "lot": "L2405123",
        "serial": "SN000123456789012",
        "udi": "(01)04012345678901(17)271231(10)L2405123(21)SN000123456789012",
        "fault": "leak",
    }
    out = []
    for i in range(n):
        lang, country = langs[i % len(langs)]
        kind = "complaint" if i % 3 else "service"
        text, _spans = narrative(faker, lang, kind, country=country, device=device, rng=rng)  # type: ignore[arg-type]
        out.append(text)
    return out


def time_it(fn: Any, *args: Any) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def bench_detection(texts: list[str]) -> dict[str, float]:
    from medlake.governance.analyzer import detect_language, detect_many, get_analyzer

    analyzer = get_analyzer()
    detect_many(texts[:50])  # warm up: build the analyzer, compile patterns

    def baseline(items: list[str]) -> None:
        for text in items:
            analyzer.analyze(text=text, language=detect_language(text))

    fast = time_it(detect_many, texts)
    slow = time_it(baseline, texts)
    return {"fast": len(texts) / fast, "baseline": len(texts) / slow}


def bench_spark_text(spark: Any, texts: list[str]) -> float:
    from medlake.governance.classes import load_classes
    from medlake.governance.keys import Keys
    from medlake.governance.masking import Masker

    masker = Masker(load_classes(), Keys({"cn": KEY}), {"SZ": "cn"})
    df = spark.createDataFrame([("SZ", t) for t in texts], "plant_id string, narrative string")
    df = df.repartition(2).localCheckpoint()
    masked = masker.mask(df, {"narrative": ("free_text", "string")})
    seconds = time_it(lambda: masked.write.format("noop").mode("overwrite").save())
    cores = spark.sparkContext.defaultParallelism
    return len(texts) / seconds / cores


def bench_structured(spark: Any, n: int) -> dict[str, float]:
    from pyspark.sql import functions as F

    from medlake.governance.classes import load_classes
    from medlake.governance.keys import Keys
    from medlake.governance.masking import Masker
    from medlake.governance.operators import normalise

    masker = Masker(load_classes(), Keys({"cn": KEY}), {"SZ": "cn"})
    df = (
        spark.range(n)
        .select(
            F.lit("SZ").alias("plant_id"),
            F.concat(F.lit("Contact Person "), F.col("id")).alias("contact_name"),
            F.concat(F.lit("+86 138 "), F.lpad(F.col("id").cast("string"), 8, "0")).alias(
                "contact_phone"
            ),
            F.concat(F.lit("person"), F.col("id"), F.lit("@example.cn")).alias("contact_email"),
        )
        .localCheckpoint()
    )
    columns = {
        "contact_name": ("pii.person_name", "string"),
        "contact_phone": ("pii.phone", "string"),
        "contact_email": ("pii.email", "string"),
    }
    masked = masker.mask(df, columns).drop("_vault")
    fast = time_it(lambda: masked.write.format("noop").mode("overwrite").save())

    entities = {
        "contact_name": "PERSON",
        "contact_phone": "PHONE_NUMBER",
        "contact_email": "EMAIL_ADDRESS",
    }

    def python_token(entity: str) -> Any:
        @F.udf("string")
        def token(value: str | None) -> str | None:
            if value is None:
                return None
            digest = hmac.new(KEY, normalise(entity, value).encode(), hashlib.sha256).hexdigest()
            return f"{entity}_cn_{digest[:16]}"

        return token

    slow_df = df.select(
        "plant_id", *[python_token(e)(F.col(c)).alias(c) for c, e in entities.items()]
    )
    slow = time_it(lambda: slow_df.write.format("noop").mode("overwrite").save())
    return {"fast": n / fast, "baseline": n / slow}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--narratives", default="2000,20000")
    parser.add_argument("--rows", default="200000,2000000")
    args = parser.parse_args()
    sizes = [int(x) for x in args.narratives.split(",")]
    row_sizes = [int(x) for x in args.rows.split(",")]

    from medlake.config import load_settings
    from medlake.spark import build_spark

    settings = load_settings(overrides={"storage": {"root": "var/bench/governance"}})
    spark = build_spark(settings, app_name="bench-governance")
    # warm-up (JIT, Python workers, analyzer per worker), not timed
    bench_spark_text(spark, narratives(200, seed=1))
    bench_structured(spark, 20_000)
    text_rows = []
    for n in sizes:
        texts = narratives(n)
        detection = bench_detection(texts)
        per_core_spark = bench_spark_text(spark, texts)
        text_rows.append((n, detection, per_core_spark))
        print(n, detection, per_core_spark, flush=True)
    # the adversarial corpus (medlake.governance.corpus): harder texts, more findings per text
    from medlake.governance.corpus import generate

    corpus = [t.text for seed in range(1, 6) for t in generate(seed)]
    detection = bench_detection(corpus)
    corpus_row = (len(corpus), detection, bench_spark_text(spark, corpus))
    print("corpus", corpus_row, flush=True)
    struct_rows = []
    for n in row_sizes:
        result = bench_structured(spark, n)
        struct_rows.append((n, result))
        print(n, result, flush=True)
    spark.stop()
    today = dt.date.today().isoformat()
    lines = [
        "## Governance: Presidio on narratives, structured masking",
        "",
        f"Latest run {today} on {machine()}.",
        "Command: `python -m bench.governance` (texts: the simulator's complaint and service "
        "narratives in Chinese, English and German).",
        "Target: at least 1,000 narratives per second per core. Each path runs once after an "
        "untimed warm-up; Spark runs local[2] (per core = rate / 2).",
        "",
        "| narratives | detect_many, 1 process (/s) | baseline: analyze() per text (/s) | ratio | masked in Spark, per core (/s) |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, d, spark_rate in text_rows:
        lines.append(
            f"| {n:,} | {d['fast']:,.0f} | {d['baseline']:,.0f} | "
            f"{d['fast'] / d['baseline']:.1f}x | {spark_rate:,.0f} |"
        )
    n, d, spark_rate = corpus_row
    lines.append(
        f"| {n:,} (adversarial corpus, seeds 1-5) | {d['fast']:,.0f} | {d['baseline']:,.0f} | "
        f"{d['fast'] / d['baseline']:.1f}x | {spark_rate:,.0f} |"
    )
    lines += ["", PREVIOUS]
    lines += [
        "",
        "| rows (3 personal columns) | Spark built-in HMAC (rows/s) | baseline: Python UDF HMAC (rows/s) | ratio |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for n, r in struct_rows:
        lines.append(
            f"| {n:,} | {r['fast']:,.0f} | {r['baseline']:,.0f} | {r['fast'] / r['baseline']:.1f}x |"
        )
    lines += [
        "",
        "Notes: every simulated narrative holds digits, so the pre-filter passes them all and "
        "`detect_many` does the same work as the baseline (the two columns differ by noise); "
        "the pre-filter pays off on short structured values (the governance scan). The small "
        "Spark runs are dominated by fixed costs (Python workers, one analyzer per worker, "
        "job start); the large ones show the steady rate. Structured masking compares Spark "
        "built-ins (HMAC from `sha2`, key pads joined as broadcast data) with a row-at-a-time "
        "Python UDF; at the small size both are fixed-cost bound.",
    ]
    write_section("governance", "\n".join(lines))


if __name__ == "__main__":
    main()
