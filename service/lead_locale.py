"""Fill a lead's missing country, time zone and language from what it does carry, and say so.

Libraries, not hand-written tables: ``phonenumbers`` (libphonenumber's metadata) gives a phone
number's region and time zones; ``pytz`` the main time zone of a country; ``lingua`` the language
of free text (restricted to the languages we route in); Babel (CLDR) a country's main language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import phonenumbers
import pytz
from babel.languages import get_official_languages
from phonenumbers import timezone as phone_timezone

from features.catalog import LANGUAGES

_LINGUA_NAMES = {
    "zh": "CHINESE",
    "ja": "JAPANESE",
    "ko": "KOREAN",
    "en": "ENGLISH",
    "de": "GERMAN",
    "fr": "FRENCH",
    "es": "SPANISH",
    "pt": "PORTUGUESE",
}
MIN_MESSAGE_CHARS = 8  # shorter texts say too little about their language


@dataclass
class Inferred:
    country: str | None
    timezone: str | None
    language: str | None
    sources: dict[str, str] = field(default_factory=dict)  # field -> what it was inferred from


@lru_cache(maxsize=1)
def language_detector():  # type: ignore[no-untyped-def]
    """Lingua over the routed languages, models preloaded (about 0.7 s, once per process)."""
    from lingua import Language, LanguageDetectorBuilder

    languages = [getattr(Language, _LINGUA_NAMES[code]) for code in LANGUAGES if code in _LINGUA_NAMES]
    return LanguageDetectorBuilder.from_languages(*languages).with_preloaded_language_models().build()


def _phone(phone: str | None, country: str | None) -> phonenumbers.PhoneNumber | None:
    if not phone:
        return None
    try:
        number = phonenumbers.parse(phone, country)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def _language_of_text(text: str | None) -> str | None:
    if not text or len(text.strip()) < MIN_MESSAGE_CHARS:
        return None
    found = language_detector().detect_language_of(text)
    if found is None:
        return None
    code = found.iso_code_639_1.name.lower()
    return code if code in LANGUAGES else None


def infer_missing(
    country: str | None, timezone: str | None, language: str | None, phone: str | None, message: str | None
) -> Inferred:
    """Keep what was given; infer only what is missing, recording the source of each inference."""
    out = Inferred(country, timezone, language)
    number = _phone(phone, country)
    if out.country is None and number is not None:
        region = phonenumbers.region_code_for_number(number)
        if region and region != "ZZ":
            out.country, out.sources["country"] = region, "phone"
    if out.timezone is None:
        zones = [z for z in phone_timezone.time_zones_for_number(number) if "/" in z] if number else []
        if zones:
            out.timezone, out.sources["timezone"] = zones[0], "phone"
        elif out.country and out.country in pytz.country_timezones:
            out.timezone, out.sources["timezone"] = pytz.country_timezones[out.country][0], "country"
    if out.language is None:
        detected = _language_of_text(message)
        if detected:
            out.language, out.sources["language"] = detected, "message"
        elif out.country:
            spoken = get_official_languages(out.country, de_facto=True)
            if spoken:
                out.language, out.sources["language"] = spoken[0].split("_")[0], "country"
    return out
