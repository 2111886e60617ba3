"""Plausible extra watchlists, so keyword matching can be measured at 100 watchlists.

Deterministic: the same seed gives the same 97 queries of 5-30 terms each,
drawn from news vocabulary (places, institutions, topics), with phrases,
prefix wildcards and a few AND groups, as users write them.
"""

from __future__ import annotations

import random

PLACES = """china japan russia ukraine germany france brazil india mexico canada australia nigeria kenya
egypt iran iraq israel gaza syria turkey poland spain italy taiwan vietnam indonesia pakistan
"south africa" "south korea" "saudi arabia" "united states" "european union" brussels beijing moscow kyiv
tokyo seoul delhi london paris berlin washington tehran ankara cairo lagos nairobi jakarta manila""".split("\n")
TOPICS = """election* vote* ballot* parliament* senate congress minister* "prime minister" president* cabinet
inflation "interest rate*" "central bank" recession unemployment gdp "stock market" bond* currenc* oil gas
earthquake flood* wildfire* hurricane* typhoon drought "climate change" emission* carbon renewable* solar
vaccine* pandemic outbreak* hospital* "public health" cancer disease* drug* pharma* biotech
cyberattack* ransomware hack* "data breach" malware semiconductor* chip* "artificial intelligence" robot*
strike* union* layoff* merger* acquisition* bankrupt* ipo lawsuit* antitrust regulator* fine*
protest* riot* coup refugee* migrant* asylum border* ceasefire missile* drone* troops "air strike"
sanction* embargo tariff* export* import* shipping port* pipeline* grain wheat rice fertili*
football olympic* "world cup" tennis cricket doping transfer* stadium* coach*
court* judge* verdict* trial* prison* police arrest* corruption bribe* fraud* scandal*""".split("\n")


def _terms() -> tuple[list[str], list[str]]:
    def words(lines: list[str]) -> list[str]:
        out: list[str] = []
        for line in lines:
            parts = line.split('"')
            for i, part in enumerate(parts):
                out.extend([f'"{part}"'] if i % 2 else part.split())
        return [w for w in out if w]

    return words(PLACES), words(TOPICS)


def extra_watchlists(count: int = 97, seed: int = 20261121) -> dict[str, str]:
    """``{name: query}`` for ``count`` generated watchlists of 5-30 terms each."""
    rng = random.Random(seed)
    places, topics = _terms()
    out = {}
    for i in range(count):
        size = rng.randint(5, 30)
        if i % 5 == 4:  # a topic limited to some places
            where = rng.sample(places, min(len(places), max(2, size // 3)))
            what = rng.sample(topics, max(3, size - len(where)))
            query = f"({' OR '.join(what)}) AND ({' OR '.join(where)})"
        else:
            query = " OR ".join(rng.sample(places + topics, size))
        out[f"bench_{i:03d}"] = query
    return out
