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


# What people actually watch: one named thing each (a country with its capital and
# leaders, an organisation, a company, a specific topic), written with its usual aliases.
# Taken from the places, organisations and topics that recur in the corpus stories;
# each matches a small share of them (the bench reports the largest share).
REALISTIC = """
venezuela: venezuela* OR caracas OR maduro
argentina: argentin* OR "buenos aires" OR milei
brazil: brazil* OR brasilia OR lula OR bolsonaro
mexico: mexic* OR sheinbaum OR "lopez obrador"
canada: canad* OR ottawa OR trudeau OR carney
cuba: cuba* OR havana
colombia: colombia* OR bogota OR petro
chile: chile* OR santiago NOT "santiago bernabeu"
peru: peru* OR lima
haiti: haiti* OR "port au prince"
ukraine_war: (ukrain* OR kyiv OR zelensky*) AND (russia* OR kremlin OR putin)
poland: poland OR polish OR warsaw OR tusk
hungary: hungar* OR budapest OR orban
turkey: turkey OR turkish OR ankara OR istanbul OR erdogan OR turkiye
greece: greece OR greek OR athens
italy: italy OR italian OR rome OR meloni
spain: spain OR spanish OR madrid OR sanchez
france_politics: (france OR french) AND (macron OR "national assembly" OR "prime minister" OR election*)
germany_politics: (germany OR german) AND (merz OR scholz OR bundestag OR afd OR election*)
uk_politics: (britain OR british OR uk) AND (starmer OR sunak OR labour OR tory OR tories OR parliament)
ireland: ireland OR irish OR dublin
nordics: sweden OR swedish OR norway OR norwegian OR finland OR finnish OR denmark OR danish
baltics: estonia* OR latvia* OR lithuania*
balkans: serbia* OR kosovo OR bosnia* OR croatia* OR albania* OR montenegro OR "north macedonia"
belarus: belarus* OR minsk OR lukashenko
israel_gaza: gaza OR hamas OR "west bank" OR netanyahu
lebanon: leban* OR beirut OR hezbollah
syria: syria* OR damascus OR assad
iran: iran OR iranian OR tehran OR khamenei
iraq: iraq* OR baghdad
saudi: "saudi arabia" OR saudi OR riyadh OR "bin salman"
gulf: qatar* OR doha OR "united arab emirates" OR uae OR dubai OR "abu dhabi" OR kuwait* OR bahrain* OR oman
yemen: yemen* OR houthi* OR sanaa
egypt: egypt* OR cairo OR sisi
libya: libya* OR tripoli
sudan: sudan* OR khartoum OR darfur
ethiopia: ethiopia* OR "addis ababa" OR tigray
nigeria: nigeria* OR lagos OR abuja
kenya: kenya* OR nairobi
south_africa: "south africa*" OR johannesburg OR "cape town" OR pretoria OR ramaphosa
sahel: mali OR niger OR "burkina faso" OR sahel OR chad
congo: congo* OR kinshasa
china_politics: (china OR chinese OR beijing) AND (xi OR "communist party" OR politburo)
taiwan: taiwan* OR taipei
hong_kong: "hong kong"
japan_politics: (japan* OR tokyo) AND (ishiba OR kishida OR takaichi OR "prime minister" OR election* OR ldp OR "bank of japan")
south_korea: "south korea*" OR seoul OR "yoon suk yeol" OR "lee jae myung"
india: india OR indian OR delhi OR mumbai OR modi
pakistan: pakistan* OR islamabad OR karachi OR lahore
afghanistan: afghan* OR kabul OR taliban
bangladesh: bangladesh* OR dhaka
myanmar: myanmar OR burma OR rangoon OR yangon
vietnam: vietnam* OR hanoi
philippines: philippin* OR manila OR marcos OR duterte
indonesia: indonesia* OR jakarta OR prabowo
australia: australia* OR canberra OR sydney OR melbourne OR albanese
new_zealand: "new zealand" OR wellington OR auckland
nato: nato OR "north atlantic treaty"
united_nations: "united nations" OR "security council" OR guterres OR unicef OR unhcr
who: "world health organization" OR tedros
imf_world_bank: "international monetary fund" OR imf OR "world bank"
ecb: "european central bank" OR ecb OR lagarde
federal_reserve: "federal reserve" OR powell OR fomc
opec: opec OR "oil cartel"
eu_commission: "european commission" OR "von der leyen" OR brussels
wto_trade: "world trade organization" OR wto OR tariff* OR "trade war"
apple: "apple inc" OR iphone* OR ipad* OR "tim cook" OR macbook* OR "app store"
google: alphabet OR pichai OR (google AND (antitrust OR lawsuit* OR regulator* OR earnings OR layoff* OR fine*))
microsoft: microsoft OR windows OR nadella OR azure
amazon: amazon OR aws OR bezos OR "andy jassy"
meta: facebook OR instagram OR whatsapp OR zuckerberg OR "meta platforms"
openai: openai OR chatgpt OR "sam altman"
nvidia: nvidia OR "jensen huang"
tesla: tesla OR "elon musk" OR spacex
boeing_airbus: boeing OR airbus
samsung: samsung
toyota_autos: toyota OR volkswagen OR "general motors" OR stellantis OR ford
banks: jpmorgan OR "goldman sachs" OR "morgan stanley" OR citigroup OR hsbc OR barclays
crypto: bitcoin OR crypto* OR ethereum OR blockchain OR binance
earthquakes: earthquake* OR tsunami* OR "seismic activity"
storms: hurricane* OR typhoon* OR cyclone* OR tornado*
wildfires: wildfire* OR bushfire* OR "forest fire*"
floods: flood* OR "flash flood*" OR landslide*
climate: "climate change" OR "global warming" OR cop29 OR cop30 OR "paris agreement"
pandemic: pandemic OR covid* OR coronavirus OR "bird flu" OR h5n1 OR mpox
ransomware: ransomware OR cyberattack* OR "data breach*"
ai_policy: "artificial intelligence" AND (regulat* OR law OR ban OR safety)
space: nasa OR "space station" OR astronaut* OR "moon landing" OR esa
olympics: olympic* OR paralympic*
football: "premier league" OR "champions league" OR fifa OR uefa
nuclear_energy: "nuclear power" OR "nuclear plant" OR reactor*
oil_prices: "oil price*" OR brent OR "crude oil"
migration: migrant* OR asylum OR refugee*
elections_us: (election* OR primar* OR midterm*) AND (republican* OR democrat* OR trump OR biden OR harris)
supreme_court: "supreme court" OR "chief justice"
gun_violence: "mass shooting" OR gunman OR "school shooting"
antitrust: antitrust OR "competition authority" OR "monopoly case"
"""


def realistic_watchlists() -> dict[str, str]:
    """``{name: query}`` for 97 watchlists of the kind people keep (one named thing each)."""
    out = {}
    for line in REALISTIC.strip().splitlines():
        name, _, query = line.partition(":")
        out[f"real_{name.strip()}"] = query.strip()
    return out
