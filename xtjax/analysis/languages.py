"""Language metadata for ordering per-language analyses: family and resource class.

``family`` is the Glottolog top-level family (genus in brackets where the family is large).
``joshi`` is the resource class of Joshi et al. 2020, "The State and Fate of Linguistic Diversity
and Inclusion in the NLP World" (ACL, https://aclanthology.org/2020.acl-main.560): 0 ("left-
behinds") to 5 ("winners"), from the paper's language list
https://microsoft.github.io/linguisticdiversity/assets/lang2tax.txt. Every language of XTREME
and XTREME-R is here.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Language:
  name: str
  family: str
  joshi: int


LANGUAGES = {
    "af": Language("Afrikaans", "Indo-European (Germanic)", 3),
    "ar": Language("Arabic", "Afro-Asiatic (Semitic)", 5),
    "az": Language("Azerbaijani", "Turkic", 1),
    "bg": Language("Bulgarian", "Indo-European (Slavic)", 3),
    "bn": Language("Bengali", "Indo-European (Indo-Aryan)", 3),
    "de": Language("German", "Indo-European (Germanic)", 5),
    "el": Language("Greek", "Indo-European (Hellenic)", 3),
    "en": Language("English", "Indo-European (Germanic)", 5),
    "es": Language("Spanish", "Indo-European (Romance)", 5),
    "et": Language("Estonian", "Uralic", 3),
    "eu": Language("Basque", "Basque (isolate)", 4),
    "fa": Language("Persian", "Indo-European (Iranian)", 4),
    "fi": Language("Finnish", "Uralic", 4),
    "fr": Language("French", "Indo-European (Romance)", 5),
    "gu": Language("Gujarati", "Indo-European (Indo-Aryan)", 1),
    "he": Language("Hebrew", "Afro-Asiatic (Semitic)", 3),
    "hi": Language("Hindi", "Indo-European (Indo-Aryan)", 4),
    "ht": Language("Haitian Creole", "Creole (French-based)", 2),
    "hu": Language("Hungarian", "Uralic", 4),
    "id": Language("Indonesian", "Austronesian", 3),
    "it": Language("Italian", "Indo-European (Romance)", 4),
    "ja": Language("Japanese", "Japonic", 5),
    "jv": Language("Javanese", "Austronesian", 1),
    "ka": Language("Georgian", "Kartvelian", 3),
    "kk": Language("Kazakh", "Turkic", 3),
    "ko": Language("Korean", "Koreanic", 4),
    "lt": Language("Lithuanian", "Indo-European (Baltic)", 3),
    "ml": Language("Malayalam", "Dravidian", 1),
    "mr": Language("Marathi", "Indo-European (Indo-Aryan)", 2),
    "ms": Language("Malay", "Austronesian", 3),
    "my": Language("Burmese", "Sino-Tibetan", 1),
    "nl": Language("Dutch", "Indo-European (Germanic)", 4),
    "pa": Language("Punjabi", "Indo-European (Indo-Aryan)", 2),
    "pl": Language("Polish", "Indo-European (Slavic)", 4),
    "pt": Language("Portuguese", "Indo-European (Romance)", 4),
    "qu": Language("Quechua", "Quechuan", 1),
    "ro": Language("Romanian", "Indo-European (Romance)", 3),
    "ru": Language("Russian", "Indo-European (Slavic)", 4),
    "sw": Language("Swahili", "Niger-Congo (Bantu)", 2),
    "ta": Language("Tamil", "Dravidian", 3),
    "te": Language("Telugu", "Dravidian", 1),
    "th": Language("Thai", "Kra-Dai", 3),
    "tl": Language("Tagalog", "Austronesian", 3),
    "tr": Language("Turkish", "Turkic", 4),
    "uk": Language("Ukrainian", "Indo-European (Slavic)", 3),
    "ur": Language("Urdu", "Indo-European (Indo-Aryan)", 3),
    "vi": Language("Vietnamese", "Austroasiatic", 4),
    "wo": Language("Wolof", "Niger-Congo", 2),
    "yo": Language("Yoruba", "Niger-Congo", 2),
    "zh": Language("Chinese", "Sino-Tibetan", 5),
}
ORDERS = ("resource", "family", "code")


def ordered(codes, by: str = "resource") -> list[str]:
  """``codes`` sorted by resource class (richest first), by family, or by code; ties by family
  and code. Codes without metadata go last, in code order."""
  if by not in ORDERS:
    raise ValueError(f"unknown language order {by!r}: use {', '.join(ORDERS)}")
  known = [c for c in codes if c in LANGUAGES]
  keys = {"resource": lambda c: (-LANGUAGES[c].joshi, LANGUAGES[c].family, c),
          "family": lambda c: (LANGUAGES[c].family, -LANGUAGES[c].joshi, c),
          "code": lambda c: c}
  return sorted(known, key=keys[by]) + sorted(c for c in codes if c not in LANGUAGES)


def label(code: str, by: str = "resource") -> str:
  """A tick label: the code with its resource class or family."""
  if code not in LANGUAGES:
    return code
  meta = LANGUAGES[code]
  return f"{code} ({meta.joshi})" if by == "resource" else f"{code} ({meta.family.split(' (')[0]})"
