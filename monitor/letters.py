"""Letters a language writes with a mark but counts as letters of their own.

The query language folds accents (``cafe`` matches *café*), which is right
where the mark is a decoration of a letter: French, Portuguese, Italian,
Dutch, German (whose dictionaries sort ``ä`` with ``a``). It is wrong where
the alphabet has a letter of its own: a Swedish *gått* ("gone") is not the
trade agreement *GATT*, a Spanish *año* is not *ano*. For a story in such a
language those letters are kept as they are; every other mark is still
folded. The table follows the alphabets as their languages sort them (CLDR's
collation tailorings): a letter sorted apart from its base letter is a
letter of its own; a mark that only breaks ties (Czech *á*, Latvian *ā*)
is an accent and folds.
Letters that have no decomposition (``æ``, ``ø``, ``ł``, ``ð``) are never
folded and need no entry; they are listed where they belong for the reader.
"""

from __future__ import annotations

import functools

__all__ = ["OWN_LETTERS", "SAME_LETTER", "own_letters"]

NO_LETTERS: frozenset[str] = frozenset()

_NORDIC = "åäöæø"
_SOUTH_SLAVIC = "čćđšž"
OWN_LETTERS: dict[str, str] = {
    "sv": _NORDIC, "fi": _NORDIC, "da": _NORDIC, "nb": _NORDIC, "nn": _NORDIC, "no": _NORDIC,
    "is": "áéíóúýöæðþ", "fo": "áíóúýøæð",
    "et": "äöõüšž", "lv": "čģķļņšž", "lt": "čšž",
    "hu": "öőüű", "tr": "çğıöşü", "az": "çəğıöşü",
    "es": "ñ", "gl": "ñ", "eu": "ñ",
    "pl": "ąćęłńóśźż", "cs": "čřšž", "sk": "äčôšž",
    "ro": "ăâîșț", "hr": _SOUTH_SLAVIC, "bs": _SOUTH_SLAVIC, "sr": _SOUTH_SLAVIC, "sl": "čšž",
}


# ISO 639-2 codes (feeds and people write them too) for the languages of the table.
_THREE_LETTER = {
    "swe": "sv", "fin": "fi", "dan": "da", "nob": "nb", "nno": "nn", "nor": "no", "isl": "is", "ice": "is",
    "fao": "fo", "est": "et", "lav": "lv", "lit": "lt", "hun": "hu", "tur": "tr", "aze": "az", "spa": "es",
    "glg": "gl", "eus": "eu", "baq": "eu", "pol": "pl", "ces": "cs", "cze": "cs", "slk": "sk", "slo": "sk",
    "ron": "ro", "rum": "ro", "hrv": "hr", "bos": "bs", "srp": "sr", "slv": "sl",
}
# One letter written two ways: Romanian s and t with a comma below, often typed
# with a cedilla (ş, ţ) on keyboards without them.
SAME_LETTER = str.maketrans("şţŞŢ", "șțȘȚ")


@functools.lru_cache(maxsize=256)
def own_letters(language: str | None) -> frozenset[str]:
    """The letters kept unfolded in a story written in ``language`` (a code such as ``sv``, ``sv-SE`` or ``swe``).

    An unknown or missing language keeps none: every mark is folded, as it always was.
    """
    if not language:
        return NO_LETTERS
    primary = language.strip().replace("_", "-").split("-")[0].casefold()
    return frozenset(OWN_LETTERS.get(_THREE_LETTER.get(primary, primary), ""))


def letter_sets() -> list[frozenset[str]]:
    """Every distinct set of kept letters: the spellings a query word can meet in stories."""
    return sorted({frozenset(v) for v in OWN_LETTERS.values()}, key=sorted)
