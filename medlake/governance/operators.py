"""Masking operators, one small class each, registered by name; Spark and Python forms agree.

Every operator masks a structured column with Spark built-in functions (`column`) and a
value found inside free text in Python (`text`); both give the same result for the same
value, so a person's pseudonym in `silver.customers.contact_name` equals the token that
replaces the same name inside a complaint narrative. The pseudonym is a keyed HMAC-SHA256
(RFC 2104) of the normalised value, computed in Spark from `sha2` over binary
concatenations so that no Python UDF touches structured columns; the key reaches Spark as
data joined by jurisdiction, never as a literal of the query plan.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pyspark.sql import Column
from pyspark.sql import functions as F

TOKEN_HEX = 16  # 64 bits of the HMAC: collisions are negligible at any group's scale
TOKEN = re.compile(r"^(?P<entity>[A-Z_]+)_(?P<jurisdiction>[a-z]{2})_[0-9a-f]{16}$")
_BLOCK = 64  # SHA-256 block size in bytes
_WS = re.compile(r"\s+", re.ASCII)  # Java's \s: [ \t\n\x0B\f\r]
_EDGE_WS = re.compile(r"^\s+|\s+$", re.ASCII)
_NOT_DIGIT = re.compile(r"[^0-9]")
_DIGITS_ONLY = frozenset({"PHONE_NUMBER", "CREDIT_CARD"})
_UPPER_COMPACT = frozenset({"CN_RESIDENT_ID", "IBAN_CODE"})


@dataclass(frozen=True)
class Pseudonymiser:
    """HMAC tokens for one jurisdiction in Python: `<ENTITY>_<jurisdiction>_<16 hex>`."""

    jurisdiction: str
    key: bytes

    def __repr__(self) -> str:
        return f"Pseudonymiser({self.jurisdiction})"

    def token(self, entity: str, value: str) -> str | None:
        """None when nothing is left of the value after normalising (like `token_column`)."""
        normalised = normalise(entity, value)
        if not normalised:
            return None
        digest = hmac.new(self.key, normalised.encode("utf-8"), hashlib.sha256)
        return f"{entity}_{self.jurisdiction}_{digest.hexdigest()[:TOKEN_HEX]}"


@dataclass(frozen=True)
class KeyColumns:
    """The row's jurisdiction and its key's HMAC pads as columns.

    The key travels as data (a broadcast table joined by jurisdiction), never as a literal:
    literals are printed in query plans, the Spark UI and event logs.
    """

    jurisdiction: Column
    ipad: Column
    opad: Column


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """RFC 2104: the key padded to the SHA-256 block, XORed with ipad and opad."""
    block = (hashlib.sha256(key).digest() if len(key) > _BLOCK else key).ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def token_column(entity: str, value: Column, keys: KeyColumns) -> Column:
    """`Pseudonymiser.token` in Spark built-ins: H(k^opad || H(k^ipad || m)). NULL for a
    value with nothing left after normalisation (`-`, `n/a`), so such values share no token."""
    normalised = normalise_column(entity, value)
    inner = F.unhex(F.sha2(F.concat(keys.ipad, F.encode(normalised, "UTF-8")), 256))
    outer = F.sha2(F.concat(keys.opad, inner), 256)
    token = F.concat(
        F.lit(f"{entity}_"), keys.jurisdiction, F.lit("_"), F.substring(outer, 1, TOKEN_HEX)
    )
    return F.when(value.isNotNull() & (normalised != ""), token)


def normalise(entity: str, value: str) -> str:
    """What makes two spellings of one value the same person: spacing, case, separators."""
    if entity in _DIGITS_ONLY:
        return _NOT_DIGIT.sub("", value)
    if entity in _UPPER_COMPACT:
        return _WS.sub("", value).upper()
    return _WS.sub(" ", _EDGE_WS.sub("", value)).lower()


def normalise_column(entity: str, value: Column) -> Column:
    """`normalise` in Spark built-ins (Java regex `\\s` is the ASCII set, like re.ASCII)."""
    if entity in _DIGITS_ONLY:
        return F.regexp_replace(value, "[^0-9]", "")
    if entity in _UPPER_COMPACT:
        return F.upper(F.regexp_replace(value, r"\s+", ""))
    return F.lower(F.regexp_replace(F.regexp_replace(value, r"^\s+|\s+$", ""), r"\s+", " "))


@dataclass(frozen=True)
class Target:
    """What is being masked: the entity type (for tokens and labels) and the column's type."""

    entity: str
    data_type: str = "string"
    params: Mapping[str, Any] | None = None

    def param(self, name: str, default: Any) -> Any:
        return (self.params or {}).get(name, default)


class Operator(ABC):
    """A masking operator: `column` for structured data, `text` for a value inside free text."""

    name: ClassVar[str]
    vaulted: ClassVar[bool] = False  # whether the clear value goes to the re-identification vault

    @abstractmethod
    def column(self, value: Column, target: Target, keys: KeyColumns) -> Column: ...

    @abstractmethod
    def text(self, value: str, target: Target, pseudonymiser: Pseudonymiser) -> str: ...


OPERATORS: dict[str, Operator] = {}


def register(name: str) -> Callable[[type[Operator]], type[Operator]]:
    def decorate(cls: type[Operator]) -> type[Operator]:
        if name in OPERATORS:
            raise ValueError(f"masking operator {name!r} is registered twice")
        cls.name = name
        OPERATORS[name] = cls()
        return cls

    return decorate


def operator(name: str) -> Operator:
    try:
        return OPERATORS[name]
    except KeyError:
        raise KeyError(
            f"unknown masking operator {name!r}; registered: {', '.join(sorted(OPERATORS))}"
        ) from None


@register("pseudonym")
class Pseudonym(Operator):
    """Keyed HMAC-SHA256 token: joins still work, the clear value sits only in the vault."""

    vaulted = True

    def column(self, value: Column, target: Target, keys: KeyColumns) -> Column:
        return token_column(target.entity, value, keys)

    def text(self, value: str, target: Target, pseudonymiser: Pseudonymiser) -> str:
        return pseudonymiser.token(target.entity, value) or f"<{target.entity}>"


@register("partial_mask")
class PartialMask(Operator):
    """Keep `keep_start` and `keep_end` characters, star the rest (138****5678)."""

    def column(self, value: Column, target: Target, keys: KeyColumns) -> Column:
        start, end = int(target.param("keep_start", 3)), int(target.param("keep_end", 4))
        length = F.length(value)
        kept = F.concat(
            F.substring(value, 1, start),
            F.repeat(F.lit("*"), F.greatest(length - F.lit(start + end), F.lit(0))),
            F.substring(value, -end, end) if end else F.lit(""),
        )
        return F.when(length > start + end, kept).otherwise(F.repeat(F.lit("*"), length))

    def text(self, value: str, target: Target, pseudonymiser: Pseudonymiser) -> str:
        start, end = int(target.param("keep_start", 3)), int(target.param("keep_end", 4))
        if len(value) <= start + end:
            return "*" * len(value)
        return value[:start] + "*" * (len(value) - start - end) + (value[-end:] if end else "")


@register("redact")
class Redact(Operator):
    """Replace the value with its entity type in angle brackets (`<ADDRESS>`)."""

    def column(self, value: Column, target: Target, keys: KeyColumns) -> Column:
        return F.when(value.isNotNull(), F.lit(f"<{target.entity}>"))

    def text(self, value: str, target: Target, pseudonymiser: Pseudonymiser) -> str:
        return f"<{target.entity}>"


@register("generalise")
class Generalise(Operator):
    """Coarsen: a date to the first day of its year, a string to its first `keep` characters."""

    def column(self, value: Column, target: Target, keys: KeyColumns) -> Column:
        keep = target.param("keep", "year")
        if target.data_type in ("date", "timestamp"):
            return (
                F.trunc(value, "year")
                if target.data_type == "date"
                else F.date_trunc("year", value)
            )
        return F.substring(value, 1, int(keep))

    def text(self, value: str, target: Target, pseudonymiser: Pseudonymiser) -> str:
        keep = target.param("keep", "year")
        if keep == "year":
            match = re.search(r"(19|20)\d\d", value)
            return match.group(0) if match else f"<{target.entity}>"
        return value[: int(keep)]


@register("drop")
class Drop(Operator):
    """Nothing is kept: NULL in a column, the empty string inside text."""

    def column(self, value: Column, target: Target, keys: KeyColumns) -> Column:
        return F.lit(None).cast(target.data_type)

    def text(self, value: str, target: Target, pseudonymiser: Pseudonymiser) -> str:
        return ""
