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

One exception is folded everywhere: Turkish and Azerbaijani write *i* with
and without a dot, in both cases (İ i, I ı), where ``casefold`` knows only
I -> i, so a headline's *IŞIK* became *işik*, not the *ışık* of the text.
Matching takes dotted and dotless i as one letter (:data:`ONE_I`), as search
engines do: *İstanbul*, *ISTANBUL*, *Istanbul* and *istanbul* are one word,
and so are *ılık* (lukewarm), *ILIK* and *ilik* (marrow), a pair a reader
tells apart by context. A query finds every spelling; it cannot ask for one.
"""

from __future__ import annotations

import functools
import itertools

__all__ = ["ONE_I", "OWN_LETTERS", "SAME_LETTER", "dotless_spellings", "own_letters"]

NO_LETTERS: frozenset[str] = frozenset()

_NORDIC = "åäöæø"
_SOUTH_SLAVIC = "čćđšž"
OWN_LETTERS: dict[str, str] = {
    "sv": _NORDIC, "fi": _NORDIC, "da": _NORDIC, "nb": _NORDIC, "nn": _NORDIC, "no": _NORDIC,
    "is": "áéíóúýöæðþ", "fo": "áíóúýøæð",
    "et": "äöõüšž", "lv": "čģķļņšž", "lt": "čšž",
    "hu": "öőüű", "tr": "çğöşü", "az": "çəğöşü",  # dotless ı is i for matching (ONE_I)
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
# Dotless ı (after casefolding: I is i, İ is i and a combining dot) is i, in every language:
# no other alphabet has the letter, and a story's language is often unknown.
ONE_I = str.maketrans("ı", "i")
# The i's of a word whose every mix of i and ı a search asks an index for (2**4 spellings at most).
MIXED_I_AT_MOST = 4


def dotless_spellings(word: str) -> tuple[str, ...]:
    """The other spellings of ``word`` (folded) that an index keeping ı apart from i (SQLite's FTS5)
    holds for it: every mix of i and ı (*Diyarbakır*, *Balıkesir*, *silahlı*; *ışık*, and *Işık*, whose
    capital I the index lower-cases to i); none when it has no i.

    A word with more than :data:`MIXED_I_AT_MOST` i's gets the spellings with every i dotless and
    all but a first one: Turkish vowel harmony puts i or ı throughout most words. The matcher,
    which folds both, decides.
    """
    count = word.count("i")
    if not count:
        return ()
    if count > MIXED_I_AT_MOST:
        dotless = word.replace("i", "ı")
        return tuple(dict.fromkeys([dotless, "i" + dotless[1:]] if word[0] == "i" else [dotless]))
    between = word.split("i")
    mixes = ("".join(part + letter for part, letter in zip(between, letters)) + between[-1]
             for letters in itertools.product("iı", repeat=count))
    return tuple(spelled for spelled in mixes if spelled != word)


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
