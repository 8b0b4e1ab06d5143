"""The adversarial corpus through silver's own masking in Spark: no fragment of three or more
characters of any planted value is left in the Parquet files written, and every device
identifier is kept as written.

The corpus (`medlake.governance.corpus`, seed 3: neither of the seeds the unit test scores)
is masked by `Masker.mask` as silver masks a narrative column (class `free_text`), written
by Spark as Parquet, and read back. A fragment counts as left when the masked text holds it
more often than the text around the planted values does."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from medlake.config import DEFAULT_CONF_DIR
from medlake.governance.classes import load_classes
from medlake.governance.corpus import generate
from medlake.governance.keys import load_keys
from medlake.governance.masking import Masker
from tests.fragments import HAN, WORD, fragments

# a plant of each language's jurisdiction: Shenzhen (China), Tuttlingen (EU), Minneapolis (US)
PLANT = {"zh": "SZ", "de": "TU", "en": "MN"}
JURISDICTION = {"SZ": "cn", "TU": "eu", "MN": "us"}


def occurrences(fragment: str, text: str) -> int:
    """How often a fragment occurs: as a substring in Chinese, as a whole word otherwise."""
    if HAN.fullmatch(fragment):
        return text.count(fragment)
    return sum(1 for word in WORD.findall(text) if word.lower() == fragment)


def test_no_fragment_of_a_corpus_value_survives_silver_masking(
    spark: SparkSession, tmp_path: Path
) -> None:
    corpus = generate(seed=3)
    assert len(corpus) >= 1000
    masker = Masker(load_classes(DEFAULT_CONF_DIR), load_keys(JURISDICTION.values()), JURISDICTION)
    df = spark.createDataFrame(
        [(i, PLANT[t.language], t.text) for i, t in enumerate(corpus)],
        "id int, plant_id string, narrative string",
    )
    masked = masker.mask(df, {"narrative": ("free_text", "string")})
    out = tmp_path / "masked"
    masked.select("id", "plant_id", "narrative").write.parquet(str(out))
    by_id = {r["id"]: r["narrative"] for r in spark.read.parquet(str(out)).collect()}
    assert len(by_id) == len(corpus)

    # A fragment leaks when the masked text holds it more often than the text around the
    # planted values does (the template's own words: "der", "Unit", a quantity). Fragments
    # are any 3+ characters of a value: a word of the masked text that is part of a value
    # (the "andr" left of andrés.núñez@...), Chinese substrings, 7-digit runs of a phone.
    found = []
    for i, text in enumerate(corpus):
        around = text.text
        for _entity, start, end, _value in sorted(text.spans, key=lambda s: -s[1]):
            around = around[:start] + " " + around[end:]
        values = [value.lower() for _e, _s, _t, value in text.spans]
        candidates = {
            word.lower()
            for word in WORD.findall(by_id[i])
            if len(word) >= 3 and any(word.lower() in value for value in values)
        }
        for entity, _start, _end, value in text.spans:
            candidates |= {f for f in fragments(entity, value) if HAN.fullmatch(f) or f.isdigit()}
        for fragment in candidates:
            if occurrences(fragment, by_id[i]) > occurrences(fragment, around):
                found.append((fragment, by_id[i]))
    assert sum(len(t.spans) for t in corpus) > 1500
    assert not found, f"{len(found)} fragments of planted values survive masking: {found[:5]}"
    # device identifiers are not personal data: each is still there, as written
    touched = [
        (device, by_id[i])
        for i, text in enumerate(corpus)
        for device in text.device_ids
        if device not in by_id[i]
    ]
    assert sum(len(t.device_ids) for t in corpus) > 500
    assert not touched, f"{len(touched)} device identifiers masked, e.g. {touched[:3]}"
