"""Personal names and postal addresses in Latin script (English, German, Malay), no NER model.

A name is one to three capitalised tokens after a title (Mr., Frau, Dr. ...) or two to three
after a role only people have (patient, nurse, Angehörige ...); after a weaker context word
(contact, Ansprechpartner, Kunde ...) it must start with a known given name or end with a
known surname; and a known given name directly followed by a known surname is one anywhere.
German capitalises every noun, so capitalisation alone is never enough. Both recognizers
also run on Chinese text, which may quote a foreign name or address.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from presidio_analyzer import Pattern

from medlake.governance.recognizers.base import ContextPatternRecognizer
from medlake.governance.recognizers.name_lists import GIVEN_NAMES, SURNAMES, words
from medlake.governance.recognizers.registry import register


def _any(words: Iterable[str]) -> str:
    """An alternation of literal words, as a character trie (far faster than a flat list)."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 and "" not in node else f"(?:{'|'.join(branches)})"
        return body + ("?" if "" in node else "")

    return f"(?:{emit(root)})"


_NOT_LETTER = r"(?![\p{L}'’\-])"
# Words of organisations, departments, roles and places: a capitalised run with one is no one.
_ORG = _any(
    words(
        """Hospital Hospitals Clinic Clinics Klinik Kliniken Klinikum Krankenhaus Praxis Medical
        Medizintechnik Healthcare Health Pharma Pharmacy Apotheke Supplies Supply Group Gruppe GmbH
        AG KG Ltd Limited Inc Incorporated Corp Corporation LLC Sdn Bhd Berhad Co Company University
        Universität Universitätsklinikum Centre Center Zentrum Labs Laboratory Laboratories
        Technologies Technology Systems Services Service Solutions Industries Foundation Institute
        Institut Trust Town City General Street Road Avenue Straße Hall House Station Ward
        Department Abteilung Team Biomedical Engineering Safety Quality Qualität Sicherheit Officer
        Manager Coordinator Support Desk Office Büro Information Leaflet Care Record Records Portal
        Programme Program Association Society Council Board Committee Administration Verwaltung
        Purchasing Procurement Einkauf Emergency Intensive Surgery Notaufnahme Intensivstation
        Ambulanz Pflege Chirurgie Kardiologie Radiologie Onkologie Anästhesie"""
    )
)
# Capitalised words that follow a title or context word but are not names.
_STOP = _any(
    words(
        """Mr Mrs Ms Miss Dr Prof Herr Herrn Frau Der Die Das Den Dem Des Ein Eine Einen Und Oder
        Von Vom Zu Zur Zum Im Am An Auf Bei Mit Nach Für Über The And Or Of From For With To In On
        At By Patient Patientin Customer Kunde Kundin Gerät Site Unit Device Contact Kontakt"""
    )
)
_TOKEN = (
    rf"(?!(?:{_STOP}|{_ORG}){_NOT_LETTER})"
    r"(?:O['’]|Mc|Mac)?\p{Lu}\p{Ll}+(?:[\-'’]\p{Lu}?\p{Ll}+)*"
)
# A name is not followed by more capitalised words that make it an organisation or place.
_NOT_ORG = rf"(?!(?:[ ]\p{{Lu}}[\p{{L}}'’\-]*)*[ ]{_ORG}{_NOT_LETTER}){_NOT_LETTER}"
# Name particles: von und zu, van der, de la, bin, binti, a/l ... (lower case, inside a name).
_PARTICLE = (
    r"(?:von[ ]und[ ]zu|von[ ]der|von[ ]dem|von[ ]den|van[ ]der|van[ ]den|van[ ]de|de[ ]la|"
    r"de[ ]los|von|vom|van|zu|zur|ten|ter|de|da|di|del|della|du|dos|le|la|al|bin|binti|bte|"
    r"a/l|a/p|Ó|Ní|Nic|Mhic|Uí|Ua)"
)
_NAME = rf"(?:{_PARTICLE}[ ])?{_TOKEN}(?:[ ](?:{_PARTICLE}[ ])?{_TOKEN}){{0,2}}"
_TITLE = (
    r"(?<!\p{L})(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Herrn?|Frau|Hr|Fr|Sr|Encik|En|Puan|Pn|Cik|Tuan|"
    r"Dato['’]?|Datin|Datuk|Tan[ ]Sri)\.?[ ]"
    r"(?:(?:Dr|Prof|med|rer\. nat|Dipl\.-Ing|Ing|habil)\.?[ ])*"
)
_CONTEXT_WORDS = words(
    """patient patientin caregiver carer contact nurse sister physician doctor engineer technician
    user reporter name angehörige angehöriger ansprechpartner ansprechpartnerin kunde kundin
    pfleger pflegerin schwester krankenschwester arzt ärztin techniker kontakt betreiber anwender"""
)
# Roles only a person has: after one, any two or three capitalised tokens are a name
# ("patient Tadeusz Nowakowski"); field labels such as "Contact:" may precede a company.
_ROLE_WORDS = words(
    """patient patientin caregiver carer nurse sister physician doctor angehörige angehöriger
    pfleger pflegerin schwester krankenschwester arzt ärztin oberarzt oberärztin pflegekraft
    betreuer betreuerin"""
) | {"customer contact", "site contact"}
# ... and in Chinese text: 患者家属Laura Martin
_CJK_CONTEXT = "患者|家属|联系人|客户|用户|医生|护士|工程师|姓名"
_CONTEXT = rf"(?:(?<!\p{{L}})(?i:{_any(_CONTEXT_WORDS)})[:：]?[ ]+|(?:{_CJK_CONTEXT})[:：]?[ ]*)"
_ROLE = rf"(?:(?<!\p{{L}})(?i:{_any(_ROLE_WORDS)})[:：]?[ ]+|(?:患者|家属|医生|护士)[:：]?[ ]*)"
_GIVEN = _any(GIVEN_NAMES) + _NOT_LETTER
_SURNAME = _any(SURNAMES) + _NOT_LETTER


@register("latin_person")
class LatinPersonRecognizer(ContextPatternRecognizer):
    """Mr. James O'Brien / Frau Anna Müller / patient John Smith / Ansprechpartner: Uwe Koch."""

    ENTITY = "PERSON"
    LANGUAGES = ("en", "de", "zh")
    LABELLED = False
    PATTERNS = (
        Pattern("after_title", f"{_TITLE}(?P<pii>{_NAME}){_NOT_ORG}", 0.85),
        Pattern(
            "after_context",
            rf"{_CONTEXT}(?P<pii>{_GIVEN}(?:[ ](?:{_PARTICLE}[ ])?{_TOKEN}){{0,2}}"
            rf"|(?:{_TOKEN}[ ]){{0,2}}{_SURNAME})" + _NOT_ORG,
            0.8,
        ),
        Pattern(
            "after_role",
            rf"{_ROLE}(?P<pii>{_TOKEN}(?:[ ](?:{_PARTICLE}[ ])?{_TOKEN}){{1,2}}){_NOT_ORG}",
            0.75,
        ),
        # a surname alone after a role, when lower case or punctuation follows
        Pattern(
            "surname_after_role",
            rf"{_ROLE}(?P<pii>(?:{_PARTICLE}[ ])?{_TOKEN})(?=[ ]\p{{Ll}}|[,.;:)]|$)",
            0.7,
        ),
        Pattern(
            "given_surname",
            rf"(?<!\p{{L}})(?P<pii>{_GIVEN}[ ](?:(?:{_PARTICLE}|{_TOKEN})[ ])?{_SURNAME})"
            + _NOT_ORG,
            0.6,
        ),
    )
    CONTEXT = ("Mr", "Mrs", "Ms", "Dr", "Herr", "Frau", "patient", "contact", "Ansprechpartner")
    GUARDS: ClassVar[Mapping[str, str]] = {
        "after_title": r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Herrn?|Frau|Hr|Fr|Sr|Encik|En|Puan|Pn|Cik|"
        r"Tuan|Dat)",
    }


_WORD = r"(?:St\.|Mt\.|Ft\.|\p{Lu}[\p{L}'’\-]*)"
_PLACE = rf"{_WORD}(?:[ ](?:{_WORD}|\d{{1,2}})){{0,3}}"
_EN_TYPES = _any(
    words(
        """Street St. St Avenue Ave. Ave Road Rd. Rd Lane Ln. Ln Drive Dr. Dr Boulevard Blvd. Blvd
        Way Court Ct. Ct Place Pl. Parkway Pkwy Terrace Ter. Circle Cir. Square Sq. Highway Hwy
        Crescent Close Row Quay Walk Grove Gardens Mews Park Trail Pike Alley"""
    )
)
_EN_STREET = (
    rf"(?<![\p{{L}}\d])\d{{1,5}}[A-Za-z]?(?:[\-/]\d{{1,5}})?[ ]"
    rf"(?:(?:{_WORD}|\d{{1,3}}(?:st|nd|rd|th))[ ]){{1,4}}?{_EN_TYPES}(?![\p{{L}}])"
    r"(?:[ ](?:North|South|East|West|NE|NW|SE|SW|N|S|E|W)(?![\p{L}]))?"
    r"(?:,?[ ](?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|#)\.?[ ]?[A-Za-z0-9\-]{1,6})?"
)
_US_TAIL = rf",[ ]{_PLACE},[ ][A-Z]{{2}}[ ]\d{{5}}(?:-\d{{4}})?"
_IE_TAIL = (
    rf",[ ]{_PLACE}(?:,[ ](?:Co\.|County)[ ]{_WORD})?,[ ]"
    r"(?:[AC-FHKNPRTV-Y]\d{2}|D6W)[ ]?[0-9AC-FHKNPRTV-Y]{4}(?![\p{L}\d])"
)
_EIRCODE = r"(?:[AC-FHKNPRTV-Y]\d{2}|D6W)[ ]?[0-9AC-FHKNPRTV-Y]{4}(?![\p{L}\d])"
# Irish addresses often have no street number: Unit 7, Ballybrit Business Park, Galway, H91 P2DK
_IE_UNIT = (
    r"(?<!\p{L})(?:Unit|Apt\.?|Apartment|Suite|Block|Flat|Floor)[ ][A-Za-z0-9\-]{1,6},[ ]"
    rf"{_PLACE}(?:,[ ]{_PLACE}){{0,3}},[ ]{_EIRCODE}"
)
_UK_TAIL = rf",[ ]{_PLACE},[ ][A-Z]{{1,2}}\d[A-Z\d]?[ ]\d[A-Z]{{2}}(?![\p{{L}}\d])"
_MY_ADDRESS = (
    r"(?<!\p{L})(?:No\.?|Lot|Unit)[ ]?\d{1,5}[A-Za-z]?(?:[\-/]\d{1,5}[A-Za-z]?)?,[ ]"
    rf"(?:Jalan|Jln\.?|Lorong|Lrg\.?|Lebuh|Lebuhraya|Persiaran|Lengkok|Taman|Solok|Medan|Lintang)"
    rf"[ ]{_WORD}(?:[ ](?:{_WORD}|\d{{1,3}}(?:/\d{{1,3}})?[A-Z]?(?![\p{{L}}\d]))){{0,4}}"
    rf"(?:,[ ](?:Taman|Kampung|Bandar|Desa|Kawasan)[ ]{_WORD}(?:[ ]{_WORD}){{0,3}})?"
    rf",[ ]\d{{5}}[ ]{_PLACE}(?:,[ ]{_PLACE})?"
)
_DE_PREFIX = (
    r"(?:(?:Am|An der|An den|Auf der|Auf dem|Im|In der|In den|Zum|Zur|Alte|Alter|Neue|Neuer|"
    r"Obere|Untere|Große|Kleine|Hohe|Lange|Sankt|St\.)[ ])?"
)
_DE_STRASSE = (
    rf"(?<!\p{{L}}){_DE_PREFIX}\p{{Lu}}\p{{Ll}}+(?:-\p{{Lu}}\p{{Ll}}+)*(?:straße|strasse)(?!\p{{L}})"
    r"|(?<!\p{L})\p{Lu}\p{Ll}+(?:-\p{Lu}\p{Ll}+)*str\."
    r"|(?<!\p{L})\p{Lu}\p{Ll}+(?:er|sche)?[ ](?:Straße|Strasse|Str\.)"
    r"|(?<!\p{L})(?:\p{Lu}\p{Ll}+-)+(?:Straße|Strasse|Str\.)"  # Friedrich-Ebert-Straße
)
_DE_OTHER = (
    rf"(?<!\p{{L}}){_DE_PREFIX}\p{{Lu}}\p{{Ll}}+(?:-\p{{Lu}}\p{{Ll}}+)*"
    r"(?:weg|platz|allee|gasse|ring|damm|ufer|markt|steig|pfad|chaussee|promenade|graben)(?!\p{L})"
    r"|(?<!\p{L})\p{Lu}\p{Ll}+(?:er|sche)?[ ](?:Weg|Platz|Allee|Gasse|Ring|Damm|Ufer|Markt)"
    r"|(?<!\p{L})(?:\p{Lu}\p{Ll}+-)+(?:Weg|Platz|Allee|Gasse|Ring|Damm|Ufer)"
    r"|(?<!\p{L})(?:Am|Im|An der|Auf dem|Zum|Zur)[ ]\p{Lu}\p{Ll}+"
)
_DE_NUMBER = r"[ ]\d{1,4}(?:[ ]?[a-zA-Z](?![\p{L}\-]))?(?:[\-/]\d{1,4}[a-z]?)?(?!\d)"
_DE_TAIL = (
    r",?[ ](?:D-)?\d{5}[ ]\p{Lu}\p{L}+(?:-\p{Lu}\p{L}+)*"
    r"(?:[ ](?:am|im|an der|ob der|in der|bei)[ ]\p{Lu}\p{L}+)?(?:[ ]\([\p{L} .]+\))?"
)


@register("latin_address")
class LatinAddressRecognizer(ContextPatternRecognizer):
    """US, Irish, UK, Malaysian and German street addresses."""

    ENTITY = "ADDRESS"
    LANGUAGES = ("en", "de", "zh")
    LABELLED = False
    PATTERNS = (
        Pattern("us_address", _EN_STREET + _US_TAIL, 0.85),
        Pattern("ie_address", _EN_STREET + _IE_TAIL, 0.85),
        Pattern("uk_address", _EN_STREET + _UK_TAIL, 0.85),
        Pattern("ie_unit_address", _IE_UNIT, 0.85),
        Pattern("en_street", _EN_STREET, 0.6),
        Pattern("my_address", _MY_ADDRESS, 0.85),
        Pattern("de_strasse", f"(?:{_DE_STRASSE}){_DE_NUMBER}(?:{_DE_TAIL})?", 0.8),
        Pattern("de_address", f"(?:{_DE_OTHER}){_DE_NUMBER}{_DE_TAIL}", 0.8),
    )
    GUARDS: ClassVar[Mapping[str, str]] = {
        "en_street": _EN_TYPES + r"(?![^\W\d_])",
        "us_address": r",[ ][A-Z]{2}[ ]\d{5}",
        "ie_address": r"(?:[AC-FHKNPRTV-Y]\d{2}|D6W)[ ]?[0-9AC-FHKNPRTV-Y]{4}",
        "uk_address": r"[A-Z]{1,2}\d[A-Z\d]?[ ]\d[A-Z]{2}",
        "ie_unit_address": r"(?:[AC-FHKNPRTV-Y]\d{2}|D6W)[ ]?[0-9AC-FHKNPRTV-Y]{4}",
        "de_strasse": r"[sS]tra(?:ße|sse)|[sS]tr\.",
        "de_address": r"\d[a-zA-Z]?(?:[\-/]\d{1,4}[a-z]?)?,?[ ](?:D-)?\d{5}[ ][^\W\d_]",
    }
    CONTEXT = ("address", "Anschrift", "Adresse")
