"""Fill a Newsgraph database with realistic synthetic news data, fast, for benchmarks.

    python bench/generate.py --dsn postgresql://postgres@127.0.0.1:5432/newsgraph_bench \
        --create --articles 1000000

Migrates the schema with service.db.migrate.upgrade, then bulk-loads sources, entities (with
aliases), articles and article-entity links by binary COPY from worker processes (one per
core): Python generates the rows of one chunk while PostgreSQL ingests the previous buffer.

Everything is deterministic for the same arguments (one seeded `random.Random` per chunk;
`--now` fixes the time axis, default today 00:00 UTC):

* sources: S publishers (English from GB/US/IE/AU/..., ~20% Norwegian), Zipf-like volume;
* entities: M of six kinds, names from the word lists below (people, organisations, places,
  events, products, other), unique slugs, ~30% with 1-2 aliases, some unique Wikidata ids;
* articles: ~85% English, ~15% Norwegian ('nb') titles and summaries from a vocabulary with a
  Zipf-weighted head and a long tail of rare words; published over the last ~3 years, denser
  towards `--now`, ids roughly in publication order (as ingest produces them);
* ~5 links per article to Zipf-popular entities (the top ones in 5-10% of the articles);
* when the schema has them (migration 0002): every article URL in article_urls, and ~0.3%
  merged-entity redirects in entity_redirects.

For speed the secondary indexes and the unique and foreign-key constraints of the five tables
are dropped before the load and recreated after from the definitions read from the catalog
(the result is checked to equal the migrated schema), and the article_count triggers are
disabled during the load: the counters are computed while generating and checked afterwards
with one UPDATE ... FROM (SELECT ... GROUP BY) per table, which must change nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import multiprocessing
import os
import random
import sys
import time
from array import array
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from service.db import migrate
from service.ingest.normalize import slugify

DESCRIPTION: Final = "Fill a Newsgraph database with realistic synthetic news data."
TABLES: Final = ("sources", "articles", "entities", "entity_aliases", "article_entities")
# Tables of later migrations, filled when the schema has them.
OPTIONAL_TABLES: Final = ("article_urls", "entity_redirects")
# Primary keys whose rows arrive in random key order: dropped and rebuilt like unique keys.
REBUILT_PRIMARY_KEYS: Final = frozenset({"article_urls_pkey"})
COUNT_TRIGGERS: Final = (
    ("articles", "articles_count_added"),
    ("articles", "articles_count_removed"),
    ("article_entities", "article_entities_count_added"),
    ("article_entities", "article_entities_count_removed"),
)
SOURCE_COLUMNS: Final = ("id", "domain", "name", "country", "language", "article_count")
ENTITY_COLUMNS: Final = (
    "id", "kind", "name", "slug", "wikidata_id", "description", "article_count",
)  # fmt: skip
ALIAS_COLUMNS: Final = ("entity_id", "alias")
ARTICLE_COLUMNS: Final = (
    "id", "source_id", "url", "canonical_url", "external_id", "title", "summary", "body",
    "authors", "language", "section", "tags", "image_url", "image_credit", "image_caption",
    "image_alt", "image_width", "image_height", "published_at", "published_at_estimated",
    "updated_at", "ingested_at", "content_hash",
)  # fmt: skip
LINK_COLUMNS: Final = ("article_id", "entity_id", "salience", "mention_count", "published_at")
URL_COLUMNS: Final = ("url", "article_id")
REDIRECT_COLUMNS: Final = ("old_id", "old_slug", "entity_id", "merged_at")
REDIRECT_SHARE: Final = 0.003

SPAN_DAYS: Final = 3 * 365
NORWEGIAN_SHARE: Final = 0.15

Row = tuple[object, ...]


def _words(text: str) -> tuple[str, ...]:
    """Whitespace-separated words; an underscore joins the words of one item (New_York)."""
    return tuple(word.replace("_", " ") for word in text.split())


# --------------------------------------------------------------------------------------------
# Word lists
# --------------------------------------------------------------------------------------------

FIRST_NAMES: Final = _words(
    """
James Mary John Patricia Robert Jennifer Michael Linda David Elizabeth William Barbara Richard
Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty
Anthony Sandra Mark Margaret Donald Ashley Steven Kimberly Andrew Emily Paul Donna Joshua
Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy Stephanie Ronald
Rebecca Jason Laura Edward Sharon Jeffrey Cynthia Ryan Kathleen Jacob Amy Gary Angela Nicholas
Shirley Eric Anna Jonathan Brenda Stephen Pamela Larry Emma Justin Nicole Scott Helen Brandon
Samantha Benjamin Katherine Samuel Christine Gregory Debra Alexander Rachel Frank Carolyn
Patrick Janet Raymond Catherine Jack Maria Dennis Heather Jerry Diane Tyler Ruth Aaron Julie
Jose Olivia Adam Joyce Nathan Virginia Henry Victoria Douglas Kelly Zachary Lauren Peter
Christina Kyle Joan Ethan Evelyn Walter Judith Noah Megan Jeremy Andrea Christian Cheryl
Keith Hannah Roger Jacqueline Terry Martha Gerald Gloria Harold Teresa Sean Ann Austin Sara
Carl Madison Arthur Frances Lawrence Kathryn Dylan Janice Jesse Jean Jordan Abigail Bryan
Alice Billy Judy Joe Sophia Bruce Grace Gabriel Denise Logan Amber Albert Doris Willie Marilyn
Alan Danielle Juan Beverly Wayne Isabella Elijah Theresa Randy Diana Roy Natalie Vincent
Brittany Ralph Charlotte Eugene Marie Russell Kayla Bobby Alexis Mason Lori Philip Ahmed
Fatima Mohammed Aisha Omar Layla Ali Yusuf Mariam Hassan Wei Li Mei Chen Hiroshi Yuki Kenji
Sakura Raj Priya Arjun Ananya Vikram Deepika Carlos Sofia Miguel Lucia Diego Valentina Pedro
Camila Luis Gabriela Jorge Isabel Pablo Elena Javier Carmen Francesco Giulia Marco Chiara
Luca Alessandra Giovanni Pierre Camille Jean-Luc Amélie François Céline Hans Greta Klaus
Ursula Jürgen Heike Lukas Leonie Stefan Katrin Olga Ivan Natalia Dmitri Svetlana Sergei Irina
Andrzej Agnieszka Piotr Katarzyna Tomasz Zoë Siobhán Seán Niamh Chidi Amara Kwame Ama Tunde
Ngozi Thabo Zanele
"""
)

NORDIC_FIRST_NAMES: Final = _words(
    """
Jonas Erna Jens Siv Trygve Kari Ola Ingrid Lars Astrid Knut Sigrid Bjørn Solveig Per Marit
Nils Liv Arne Hilde Terje Randi Geir Tone Svein Berit Øystein Åse Håkon Ragnhild Espen Gro
Magnus Nora Sindre Ida Eirik Thea Henrik Tiril Torbjørn Synnøve Vegard Maren Audun Karianne
Jan Anniken Erik Hadia Trond Marte Kjetil Ellen Rune Gunhild Ståle Signe Øyvind Mette Anders
Kristin Martin Silje Sverre Hege Aksel Linn Emil Vilde Sondre Frøya Mathias Jenny Tobias Oda
Sander Malin Jørgen Guro Eskil Live Halvor Ragna Bård Torill Petter Unni Fredrik Ingvild
"""
)

LAST_NAMES: Final = _words(
    """
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris
Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips
Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers
Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson
Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo
Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman
Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson Alexander
Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis
Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison Fernandez McDonald
Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman Burns Crawford
Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz Hunt Hicks Holmes
Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice Schmidt
Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley
Spencer Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight Elliott Cunningham
Duncan Armstrong Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman
Johnston Matthews Pena Richards Contreras Willis Carpenter Lawrence Sandoval Müller Schneider
Fischer Weber Becker Wagner Schulz Koch Richter Klein Wolf Schröder Neumann Schwarz Zimmermann
Dubois Lefebvre Moreau Laurent Simon Michel Leroy Roux Fournier Girard Rossi Russo Ferrari
Esposito Bianchi Romano Colombo Ricci Marino Greco Kowalski Nowak Wiśniewski Wójcik Kowalczyk
Ivanov Smirnov Kuznetsov Popov Sokolov Petrov Novak Horvat Kovačević Yilmaz Kaya Demir Şahin
Çelik Tanaka Suzuki Takahashi Watanabe Yamamoto Nakamura Kobayashi Wang Zhang Liu Yang Huang
Zhao Wu Zhou Xu Sun Singh Kumar Sharma Gupta Mehta Reddy Iyer Khan Ahmed Hussain Rahman Okafor
Okonkwo Mensah Boateng Adeyemi Nkosi Dlamini O'Brien O'Connor Byrne Doyle Gallagher Walsh
McCarthy Kavanagh Ó_Súilleabháin Papadopoulos Georgiou Nielsen Jensen Pedersen Larsen
Sørensen Rasmussen Johansson Andersson Karlsson Lindqvist Virtanen Korhonen Mäkinen
"""
)

NORDIC_LAST_NAMES: Final = _words(
    """
Hansen Johansen Olsen Larsen Andersen Pedersen Nilsen Kristiansen Jensen Karlsen Johnsen
Pettersen Eriksen Berg Haugen Hagen Johannessen Andreassen Jacobsen Dahl Jørgensen Halvorsen
Henriksen Lund Sørensen Jakobsen Moen Gundersen Iversen Strand Solberg Svendsen Eide
Knutsen Martinsen Paulsen Bakken Kristoffersen Mathisen Lie Amundsen Nguyen Rasmussen Ali
Lunde Solheim Berge Moe Nygård Bakke Kristensen Fredriksen Holm Lien Hauge Christensen
Andresen Nielsen Knudsen Evensen Sæther Aas Myhre Hanssen Ahmed Haugland Thomassen Sivertsen
Simonsen Danielsen Berntsen Sandvik Rønning Arnesen Antonsen Næss Vik Haug Ellingsen
Thorsen Edvardsen Birkeland Isaksen Gulbrandsen Ruud Aasen Strøm Støre Stoltenberg
Vedum Brundtland Frydenlund Bondevik Tajik Huitfeldt Listhaug Skjelbred Haaland Ødegaard
Bjørndalen Warholm Ingebrigtsen Jakobsen Grøvdal Lysgaard Sunde Wold Dahle Fjeld Bråten
Nordli Tveit Løken Vatne Aune Brekke Kvam Sandberg Ås Tangen Rød Sunde
"""
)

BRAND_SYLLABLES: Final = _words(
    """
ka lo ven tri mar zen qua dor bel ix ra ton vi sa nor el lu mi pex dra go fi ne stra bo lin
tek vo ar is cor da ly na sol ter gen om ax ro ki ze tal mo vex ha ri ul sen tho
"""
)

ORG_INDUSTRIES: Final = _words(
    """
Energy Bank Holdings Group Capital Pharmaceuticals Motors Airlines Telecom Media Foods
Logistics Shipping Insurance Systems Technologies Robotics Mining Steel Chemicals Partners
Biotech Solar Wind Hydro Oil Gas Semiconductors Software Networks Labs Ventures Retail
Brewery Seafood Aquaculture Construction Properties Airways Rail Health Security Analytics
"""
)

ORG_SUFFIXES: Final = ("Inc.", "Ltd", "ASA", "AS", "plc", "GmbH", "SA", "Corp.", "AB", "NV")

ORG_BODIES: Final = (
    "City Council",
    "Chamber of Commerce",
    "Football Club",
    "Police District",
    "University",
    "University Hospital",
    "Port Authority",
    "Regional Council",
    "School Board",
    "Symphony",
    "Trade Union",
    "Teachers' Union",
    "Farmers' Union",
    "Business Association",
    "Airport",
    "Fire Department",
    "Court of Appeal",
    "District Court",
    "Arts Council",
    "Cathedral",
)

ORG_AGENCIES: Final = _words(
    """
Environment Energy Health Competition Maritime Aviation Road Railway Food Data Tax Customs
Consumer Financial Statistics Water Nuclear Defence Research Culture Education Immigration
"""
)

ORG_AGENCY_KINDS: Final = ("Agency", "Authority", "Directorate", "Institute", "Council", "Office")

PARTY_WORDS: Final = _words(
    """
Labour Conservative Liberal Progress Green Centre Socialist Democratic Christian People's
Workers' Unity Freedom Reform National Alliance Farmers' Pirate Red Popular
"""
)

REAL_PLACES: Final = _words(
    """
Oslo Bergen Trondheim Stavanger Tromsø Kristiansand Drammen Fredrikstad Bodø Ålesund
Lillehammer Hammerfest Alta Narvik Molde Haugesund Tønsberg Sandefjord Arendal Hamar
Gjøvik Harstad Svalbard Finnmark Nordland Rogaland Vestland Viken Innlandet Agder Trøndelag
Norway Sweden Denmark Finland Iceland Stockholm Copenhagen Helsinki Reykjavik Gothenburg
London Manchester Birmingham Glasgow Edinburgh Cardiff Belfast Dublin Cork Paris Lyon
Marseille Berlin Munich Hamburg Frankfurt Cologne Vienna Zurich Geneva Brussels Amsterdam
Rotterdam Madrid Barcelona Lisbon Porto Rome Milan Naples Athens Warsaw Krakow Prague
Budapest Bucharest Sofia Belgrade Zagreb Kyiv Kharkiv Odesa Moscow Minsk Vilnius Riga
Tallinn Istanbul Ankara Jerusalem Gaza Beirut Damascus Baghdad Tehran Riyadh Dubai Doha
Cairo Lagos Nairobi Accra Johannesburg Kinshasa Addis_Ababa Khartoum Tripoli Tunis Algiers
Beijing Shanghai Hong_Kong Taipei Tokyo Osaka Seoul Pyongyang Manila Jakarta Bangkok Hanoi
Singapore Delhi Mumbai Karachi Dhaka Kabul Sydney Melbourne Auckland Washington New_York
Chicago Houston Phoenix Boston Seattle Atlanta Miami Denver Detroit Ottawa Toronto Montreal
Vancouver Mexico_City Bogotá Lima Santiago Caracas Havana Brasília Rio_de_Janeiro Buenos_Aires
Ukraine Russia China India Japan Germany France Italy Spain Poland Brazil Canada Australia
Israel Iran Iraq Syria Turkey Egypt Nigeria Kenya Ethiopia Sudan Venezuela Argentina
Greenland Europe Africa Asia Arctic Antarctica Balkans Baltic Caribbean Sahel Scandinavia
"""
)

TOWN_PREFIXES: Final = _words(
    """
Ash Brook Clay Deer Elm Fair Glen Green Hazel Holm Iron Kings Lake Lin Maple Mill North Oak
Pine Red River Rock Rose Salt Sand Silver Spring Stone Sun Thorn West White Wolf Bjørk Fjell
Lund Strand Vik Ås Berg Dal Eik Fur Gran Hav Holt Li Myr Nes Rå Sjø Skog Sol Stein Tind
Øst Vest Nord Sør Elv Bru Kvern Mo Fager Lang Hvit Svart Grøn
"""
)

TOWN_SUFFIXES: Final = _words(
    """
ton field wood ford bury ham ley worth dale bridge port haven moor view mouth stead wick
vik dal berg stad sund nes heim by fjord øy vatn haug rud li land set bakken voll mark
"""
)

PLACE_QUALIFIERS: Final = ("North", "South", "East", "West", "Upper", "Lower", "New", "Old")
PLACE_KINDS: Final = ("County", "Valley", "Bay", "Island", "Heights", "Harbour", "Park")

EVENT_NOUNS: Final = _words(
    """
Summit Marathon Festival Games Championship Conference Cup Olympics Election Referendum
Strike Floods Wildfire Earthquake Storm Accord Talks Trial Expo Forum Rally Regatta Derby
"""
)

PRODUCT_NOUNS: Final = _words(
    """
Phone Pad Book Watch Drive Car Vision Air Pro Max Cloud Pay Go Home Studio Lens Buds Link
"""
)

OTHER_NOUNS: Final = _words(
    """
Act Reform Doctrine Plan Directive Protocol Agreement Initiative Strategy Fund Report
Programme Index Scheme Package
"""
)

NATIONALITIES: Final = (
    "American",
    "British",
    "Norwegian",
    "Swedish",
    "Danish",
    "German",
    "French",
    "Irish",
    "Italian",
    "Spanish",
    "Polish",
    "Ukrainian",
    "Russian",
    "Chinese",
    "Indian",
    "Japanese",
    "Nigerian",
    "Kenyan",
    "Brazilian",
    "Canadian",
    "Australian",
    "Turkish",
    "Israeli",
)
PERSON_ROLES: Final = (
    "politician",
    "businessperson",
    "economist",
    "footballer",
    "skier",
    "athlete",
    "actor",
    "singer",
    "author",
    "journalist",
    "diplomat",
    "judge",
    "scientist",
    "physician",
    "lawyer",
    "activist",
    "chief executive",
    "central banker",
    "minister",
    "mayor",
    "musician",
)

# English news vocabulary; earlier words are drawn more often (Zipf-weighted).
EN_NOUNS: Final = _words(
    """
government election market economy president minister court police war deal budget tax
inflation company shares report crisis talks vote law bill strike climate energy oil gas
price prices rates bank trade tariffs jobs workers union health hospital vaccine virus
school students university research study data technology software chip phone network
security attack military troops ceasefire protest protesters party coalition parliament
senate campaign poll candidate scandal investigation trial verdict sentence prison border
migrants refugees aid funding investment growth recession unemployment housing rent mortgage
debt bonds currency dollar euro stocks earnings profit losses merger acquisition startup
founder executive board shareholders regulators watchdog fine lawsuit ruling appeal treaty
summit sanctions exports imports supply shortage drought flood storm wildfire earthquake
heatwave emissions pollution wildlife forest ocean fishing farmers harvest food water
electricity grid nuclear solar wind battery airline flights airport railway road bridge port
shipping cargo football match season coach player team league title championship final
tournament medal record goal transfer injury film album festival concert museum exhibition
book novel award prize series star fans tickets streaming platform users privacy hackers
outage satellite rocket mission space telescope planet scientists discovery cancer treatment
drug patients doctors nurses pension welfare benefits reform plan strategy proposal
agreement dispute conflict crackdown referendum mayor council villagers tourism cruise salmon
aquaculture whaling fjord tunnel ferry avalanche snowfall ski glacier reindeer herders
"""
)

EN_VERBS: Final = [
    tuple(v.split("/"))
    for v in _words(
        """
back/backs/backed reject/rejects/rejected approve/approves/approved announce/announces/announced
launch/launches/launched warn/warns/warned cut/cuts/cut raise/raises/raised block/blocks/blocked
win/wins/won lose/loses/lost sign/signs/signed seek/seeks/sought face/faces/faced
push/pushes/pushed delay/delays/delayed unveil/unveils/unveiled slash/slashes/slashed
boost/boosts/boosted defend/defends/defended challenge/challenges/challenged
probe/probes/probed scrap/scraps/scrapped halt/halts/halted extend/extends/extended
criticise/criticises/criticised target/targets/targeted expand/expands/expanded
drop/drops/dropped demand/demands/demanded reveal/reveals/revealed secure/secures/secured
threaten/threatens/threatened pledge/pledges/pledged sell/sells/sold buy/buys/bought
open/opens/opened close/closes/closed ban/bans/banned tighten/tightens/tightened
ease/eases/eased overhaul/overhauls/overhauled weigh/weighs/weighed
"""
    )
]

EN_ADJECTIVES: Final = _words(
    """
new major record global local national foreign economic political military digital green
rising falling surprise key final rare historic controversial fresh fragile sweeping tough
secret urgent massive modest early late top former leading public private federal regional
rural urban coastal northern southern eastern western emergency temporary permanent
ambitious risky costly cheaper higher lower stronger weaker younger older bold quiet
unexpected landmark disputed stalled delayed troubled booming struggling renewed
"""
)

EN_PREPOSITIONS: Final = ("in", "for", "over", "after", "amid", "ahead of", "despite", "against")
EN_CLAUSES: Final = (
    "according to officials",
    "a spokesperson said",
    "in a statement on Monday",
    "sources familiar with the matter said",
    "the agency said",
    "raising fresh questions",
    "drawing criticism from the opposition",
    "analysts said",
    "local media reported",
    "as pressure mounted",
    "in a move welcomed by investors",
    "the report found",
)
EN_SPEECH: Final = ("said", "announced", "warned", "confirmed", "argued", "insisted", "claimed")
WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

NB_NOUNS: Final = _words(
    """
regjeringen statsministeren valget budsjettet skatten strømprisen renten boligmarkedet
kommunen fylket sykehuset skolen elevene lærerne politiet tingretten streiken fagforeningen
bøndene fiskerne oljefondet oljeprisen kronen inflasjonen arbeidsledigheten klimaet
utslippene vindkraften vannkraften strømnettet jernbanen veien tunnelen brua flyplassen
ferja været flommen skredet stormen tørken landslaget kampen sesongen treneren spilleren
mesterskapet finalen medaljen festivalen konserten filmen boka forfatteren prisen museet
utstillingen forskerne studien universitetet pasientene legene sykepleierne eldreomsorgen
pensjonen trygden reformen forslaget avtalen konflikten krigen sanksjonene grensen
flyktningene innvandringen bistanden selskapet aksjene børsen banken lånet gjelden
boligprisene husleien studentene barnehagen familiene ungdommen appen dataene personvernet
hackerne angrepet forsvaret soldatene øvelsen ordføreren bystyret Stortinget opposisjonen
partiet koalisjonen målingen laksen havbruket turismen hytta fjellet skiløypa isbreen
reindriften samene snøen kulden varmen matprisene dagligvarene kommunevalget
"""
)

NB_VERBS: Final = [
    tuple(v.split("/"))
    for v in _words(
        """
foreslå/foreslår/foreslo avvise/avviser/avviste godkjenne/godkjenner/godkjente
varsle/varsler/varslet kutte/kutter/kuttet øke/øker/økte stanse/stanser/stanset
kreve/krever/krevde advare/advarer/advarte lansere/lanserer/lanserte vinne/vinner/vant
tape/taper/tapte signere/signerer/signerte trekke/trekker/trakk åpne/åpner/åpnet
stenge/stenger/stengte selge/selger/solgte kjøpe/kjøper/kjøpte bygge/bygger/bygde
utsette/utsetter/utsatte innføre/innfører/innførte fjerne/fjerner/fjernet
styrke/styrker/styrket svekke/svekker/svekket redde/redder/reddet slå/slår/slo
granske/gransker/gransket love/lover/lovet forby/forbyr/forbød
"""
    )
]

NB_ADJECTIVES: Final = _words(
    """
nye store økte lavere høyere kraftige dramatiske historiske første siste omstridte usikre
rekordhøye rekordlave alvorlige viktige norske svenske lokale nasjonale grønne digitale
dyre billige nødvendige hemmelige midlertidige varige sterke svake unge eldre uventede
kritiske harde milde våte kalde
"""
)

NB_PREPOSITIONS: Final = ("i", "for", "etter", "mot", "på", "ved", "under", "før")
NB_CLAUSES: Final = (
    "opplyser departementet",
    "sier pressetalsmannen",
    "ifølge NTB",
    "skriver lokalavisen",
    "bekrefter politiet",
    "melder NRK",
    "sier ordføreren",
    "viser en ny rapport",
    "ifølge analytikerne",
    "opplyser selskapet",
)
NB_WEEKDAYS: Final = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")

EN_SECTIONS: Final = (
    "world",
    "politics",
    "business",
    "markets",
    "technology",
    "science",
    "health",
    "sport",
    "culture",
    "opinion",
    "climate",
    "local",
)
NB_SECTIONS: Final = (
    "innenriks",
    "utenriks",
    "økonomi",
    "sport",
    "kultur",
    "meninger",
    "teknologi",
    "klima",
    "lokalt",
)
AGENCIES: Final = ("Reuters", "AP", "AFP", "NTB", "Scanpix", "Getty Images", "EPA", "PA")

PAPER_WORDS: Final = _words(
    """
Times Herald Post Tribune Gazette Chronicle Journal Observer Independent Courier Star Record
Dispatch Sentinel Standard Telegraph Mirror Express Monitor Review Bulletin News Today Wire
Examiner Inquirer Register Leader Argus Echo Mercury Advertiser Guardian Press Globe
"""
)
NEWS_TOPICS: Final = _words(
    """
Business Tech Finance Energy Climate Politics Sports Health Science Markets Policy Security
Culture Property Maritime Defence Travel Food Motoring Gaming Crypto Legal
"""
)
EN_COUNTRIES: Final = (
    ("GB", "co.uk", 30), ("US", "com", 40), ("IE", "ie", 5), ("AU", "com.au", 7),
    ("CA", "ca", 6), ("IN", "in", 5), ("NZ", "co.nz", 3), ("ZA", "co.za", 3), (None, "com", 6),
)  # fmt: skip
NB_PAPER_FORMS: Final = (
    "{t} Avis",
    "{t} Dagblad",
    "{t}-Posten",
    "Avisa {t}",
    "{t} Tidende",
    "{t} Arbeiderblad",
    "{t}s Blad",
    "{t} Budstikke",
    "Dagens {n}",
    "{t}nytt",
    "{t} Folkeblad",
    "{t} Avisen",
)
NB_TOPICS: Final = (
    "Næringsliv",
    "Teknologi",
    "Sjømat",
    "Energi",
    "Politikk",
    "Landbruk",
    "Helse",
    "Sport",
)

# The long tail: pseudo-words that occur rarely, so full-text search has rare terms too.
TAIL_SYLLABLES: Final = _words(
    """
bra ven tol mir quo sar ped lin gor fex dal rum tis hob kav nel zur plo mek tan rid vos
sul cam yor bex tri gla hen dov lup nar ost wib fen jal kor mub nis
"""
)


# --------------------------------------------------------------------------------------------
# Sampling helpers
# --------------------------------------------------------------------------------------------


def zipf_cumulative(n: int, exponent: float, offset: float) -> list[float]:
    """Cumulative weights of ranks 0..n-1 with weight 1 / (rank + 1 + offset) ** exponent."""
    total = 0.0
    result = []
    for rank in range(n):
        total += 1.0 / (rank + 1 + offset) ** exponent
        result.append(total)
    return result


@dataclass(frozen=True, slots=True)
class Zipf:
    """Draws items (the first the most often) with Zipf-like weights."""

    items: Sequence[Any]
    cumulative: list[float]

    @classmethod
    def of(cls, items: Sequence[Any], exponent: float = 1.0, offset: float = 2.0) -> Zipf:
        return cls(items, zipf_cumulative(len(items), exponent, offset))

    def draw(self, rng: random.Random) -> Any:
        index = bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])
        return self.items[min(index, len(self.items) - 1)]


def _capitalise(word: str) -> str:
    return word[:1].upper() + word[1:]


def _brand(rng: random.Random) -> str:
    parts = rng.choice((2, 2, 2, 3))
    return _capitalise("".join(rng.choice(BRAND_SYLLABLES) for _ in range(parts)))


def _town(rng: random.Random) -> str:
    name = rng.choice(TOWN_PREFIXES) + rng.choice(TOWN_SUFFIXES)
    roll = rng.random()
    if roll < 0.12:
        return f"{rng.choice(PLACE_QUALIFIERS)} {name}"
    if roll < 0.22:
        return f"{name} {rng.choice(PLACE_KINDS)}"
    return name


def _tail_words(seed: int, count: int) -> list[str]:
    rng = random.Random(seed * 7919 + 17)
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(TAIL_SYLLABLES) for _ in range(rng.choice((2, 3, 3, 4)))))
    result = sorted(words)
    rng.shuffle(result)
    return result


# --------------------------------------------------------------------------------------------
# Sources and the entity catalogue (built once, in the main process)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceSpec:
    id: int
    domain: str
    name: str
    country: str | None
    language: str


def build_sources(count: int, seed: int) -> list[SourceSpec]:
    rng = random.Random(seed * 31 + 1)
    specs: list[SourceSpec] = []
    names: set[str] = set()
    domains: set[str] = set()
    nb_count = max(1, round(count * 0.2)) if count > 1 else 0
    en_weights = [w for _, _, w in EN_COUNTRIES]
    while len(specs) < count:
        norwegian = len(specs) % 5 == 4 and sum(s.language == "nb" for s in specs) < nb_count
        if norwegian:
            town = rng.choice(REAL_PLACES[:33]) if rng.random() < 0.5 else _town(rng)
            form = rng.choice(NB_PAPER_FORMS)
            name = form.format(t=town, n=rng.choice(NB_TOPICS))
            country: str | None = "NO"
            tld = "no"
            language = "nb"
        else:
            country, tld, _ = rng.choices(EN_COUNTRIES, weights=en_weights)[0]
            roll = rng.random()
            if roll < 0.55:
                place = rng.choice(REAL_PLACES[40:]) if rng.random() < 0.6 else _town(rng)
                name = f"The {place} {rng.choice(PAPER_WORDS)}"
            elif roll < 0.8:
                name = f"{rng.choice(NEWS_TOPICS)} {rng.choice(PAPER_WORDS)}"
            else:
                name = f"{_brand(rng)} {rng.choice(('News', 'Media', 'Daily', 'Insider', 'Wire'))}"
            language = "en"
        if name in names:
            continue
        base = slugify(name.removeprefix("The ")).replace("-", "")
        domain = f"{base}.{tld}"
        if domain in domains:
            domain = f"{base}news.{tld}"
        if domain in domains:
            continue
        names.add(name)
        domains.add(domain)
        specs.append(SourceSpec(len(specs) + 1, domain, name, country, language))
    return specs


@dataclass(slots=True)
class Catalogue:
    """Entities by id (index 0 unused), with aliases and the popularity order."""

    kinds: list[str] = field(default_factory=lambda: [""])
    names: list[str] = field(default_factory=lambda: [""])
    slugs: list[str] = field(default_factory=lambda: [""])
    wikidata: list[str | None] = field(default_factory=lambda: [None])
    descriptions: list[str | None] = field(default_factory=lambda: [None])
    aliases: list[tuple[str, ...]] = field(default_factory=lambda: [()])
    by_rank: list[int] = field(default_factory=list)  # popularity rank -> entity id


ENTITY_KINDS: Final = ("PERSON", "ORGANIZATION", "PLACE", "EVENT", "PRODUCT", "OTHER")
ENTITY_KIND_WEIGHTS: Final = (40, 25, 20, 5, 7, 3)


def _person(rng: random.Random) -> tuple[str, str | None, tuple[str, ...]]:
    nordic = rng.random() < 0.25
    first = rng.choice(NORDIC_FIRST_NAMES if nordic else FIRST_NAMES)
    last = rng.choice(NORDIC_LAST_NAMES if nordic else LAST_NAMES)
    if rng.random() < 0.06:
        last = f"{last}-{rng.choice(NORDIC_LAST_NAMES if nordic else LAST_NAMES)}"
    middle = f" {rng.choice('ABCDEFGHJKLMNOPRSTW')}." if rng.random() < 0.25 else ""
    name = f"{first}{middle} {last}"
    description = None
    if rng.random() < 0.6:
        nationality = "Norwegian" if nordic else rng.choice(NATIONALITIES)
        description = f"{nationality} {rng.choice(PERSON_ROLES)}"
    aliases: tuple[str, ...] = ()
    if rng.random() < 0.3:
        options = [f"{first[0]}. {last}", last, f"{first} {last}" if middle else f"{last}, {first}"]
        aliases = tuple(dict.fromkeys(rng.sample(options, rng.choice((1, 1, 2)))))
    return name, description, aliases


def _acronym(name: str) -> str:
    letters = [w[0] for w in name.replace("-", " ").split() if w[:1].isalpha() and w[0].isupper()]
    return "".join(letters)


def _organisation(rng: random.Random) -> tuple[str, str | None, tuple[str, ...]]:
    roll = rng.random()
    if roll < 0.3:
        name = f"{_brand(rng)} {rng.choice(ORG_INDUSTRIES)}"
        description = "company"
    elif roll < 0.45:
        name = f"{_brand(rng)} {rng.choice(ORG_SUFFIXES)}"
        description = "company"
    elif roll < 0.65:
        name = f"{rng.choice(REAL_PLACES) if rng.random() < 0.5 else _town(rng)} "
        name += rng.choice(ORG_BODIES)
        description = "institution"
    elif roll < 0.77:
        name = f"National {rng.choice(ORG_AGENCIES)} {rng.choice(ORG_AGENCY_KINDS)}"
        if rng.random() < 0.7:
            name = f"{rng.choice(REAL_PLACES[:80])} {name.removeprefix('National ')}"
        description = "government agency"
    elif roll < 0.87:
        words = rng.sample(PARTY_WORDS, rng.choice((1, 2)))
        name = f"{' '.join(words)} Party"
        if rng.random() < 0.6:
            name = f"{name} of {rng.choice(REAL_PLACES)}"
        description = "political party"
    else:
        name = f"{rng.choice(LAST_NAMES)} & {rng.choice(LAST_NAMES)}"
        description = rng.choice(("law firm", "consultancy", "investment firm"))
    aliases: tuple[str, ...] = ()
    if rng.random() < 0.35:
        acronym = _acronym(name)
        if len(acronym) >= 2 and acronym != name:
            aliases = (acronym,)
        elif " " in name:
            aliases = (name.split()[0],)
    return name, description if rng.random() < 0.7 else None, aliases


def _place(rng: random.Random) -> tuple[str, str | None, tuple[str, ...]]:
    name = rng.choice(REAL_PLACES) if rng.random() < 0.04 else _town(rng)
    description = rng.choice(("town", "city", "municipality", "village", "region", None))
    aliases: tuple[str, ...] = ()
    if rng.random() < 0.2:
        aliases = (f"{name} municipality" if rng.random() < 0.5 else f"{name} kommune",)
    return name, description, aliases


def _event(rng: random.Random) -> tuple[str, str | None, tuple[str, ...]]:
    year = rng.randint(1990, 2027)
    place = rng.choice(REAL_PLACES) if rng.random() < 0.6 else _town(rng)
    noun = rng.choice(EVENT_NOUNS)
    name = f"{year} {place} {noun}" if rng.random() < 0.5 else f"{place} {noun} {year}"
    aliases = (f"{place} {noun}",) if rng.random() < 0.3 else ()
    return name, "event" if rng.random() < 0.5 else None, aliases


def _product(rng: random.Random) -> tuple[str, str | None, tuple[str, ...]]:
    brand = _brand(rng)
    roll = rng.random()
    if roll < 0.4:
        name = f"{brand} {rng.choice(PRODUCT_NOUNS)}"
    elif roll < 0.8:
        name = f"{brand} {rng.choice('XSQMAZ')}{rng.randint(1, 20)}"
    else:
        name = f"{brand} {rng.choice(PRODUCT_NOUNS)} {rng.randint(2, 15)}"
    aliases = (name.replace(" ", ""),) if rng.random() < 0.3 else ()
    return name, rng.choice(("smartphone", "software", "vehicle", "service", None)), aliases


def _other(rng: random.Random) -> tuple[str, str | None, tuple[str, ...]]:
    roll = rng.random()
    if roll < 0.4:
        name = f"{_capitalise(rng.choice(EN_ADJECTIVES))} {_capitalise(rng.choice(EN_NOUNS))} "
        name += rng.choice(OTHER_NOUNS)
    elif roll < 0.7:
        name = f"{rng.choice(LAST_NAMES)} {rng.choice(OTHER_NOUNS)}"
    else:
        name = f"Operation {_brand(rng)}"
    aliases = (_acronym(name),) if rng.random() < 0.2 and len(_acronym(name)) >= 2 else ()
    return name, None, aliases


_KIND_BUILDERS: Final = {
    "PERSON": _person,
    "ORGANIZATION": _organisation,
    "PLACE": _place,
    "EVENT": _event,
    "PRODUCT": _product,
    "OTHER": _other,
}


def build_catalogue(count: int, seed: int) -> Catalogue:
    rng = random.Random(seed * 31 + 2)
    cat = Catalogue()
    taken: set[str] = set()
    next_suffix: dict[str, int] = {}
    kinds = rng.choices(ENTITY_KINDS, weights=ENTITY_KIND_WEIGHTS, k=count)
    # Popularity: a random permutation of the ids, so popular entities are spread over ids.
    by_rank = list(range(1, count + 1))
    rng.shuffle(by_rank)
    rank_of = [0] * (count + 1)
    for rank, entity_id in enumerate(by_rank):
        rank_of[entity_id] = rank
    for entity_id in range(1, count + 1):
        kind = kinds[entity_id - 1]
        name, description, aliases = _KIND_BUILDERS[kind](rng)
        # Unique slugs: namesakes get -2, -3, ... in id order.
        base = slugify(name)
        n = next_suffix.get(base, 1)
        slug = base if n == 1 else f"{base}-{n}"
        while slug in taken:
            n += 1
            slug = f"{base}-{n}"
        next_suffix[base] = n + 1
        taken.add(slug)
        popular = rank_of[entity_id] < 20_000
        wikidata = None
        if rng.random() < (0.9 if popular else 0.3):
            wikidata = f"Q{100 + entity_id * 11 + rng.randrange(11)}"
        clean_aliases = tuple(a for a in dict.fromkeys(aliases) if a and a != name)
        cat.kinds.append(kind)
        cat.names.append(name)
        cat.slugs.append(slug)
        cat.wikidata.append(wikidata)
        cat.descriptions.append(description)
        cat.aliases.append(clean_aliases)
    cat.by_rank = by_rank
    return cat


# --------------------------------------------------------------------------------------------
# Articles and links (generated in worker processes)
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class World:
    """What the workers need; set before the pool forks, so children inherit it."""

    seed: int
    articles: int
    now: datetime
    tables: tuple[str, ...]
    body_sentences: int
    sources: list[SourceSpec]
    sources_by_language: dict[str, Zipf]
    catalogue: Catalogue
    entity_cumulative: list[float]
    tail: Zipf
    en_nouns: Zipf
    en_adjectives: Zipf
    en_verbs: Zipf
    nb_nouns: Zipf
    nb_adjectives: Zipf
    nb_verbs: Zipf


WORLD: World | None = None

LINKS_PER_ARTICLE: Final = (1, 2, 3, 4, 5, 6, 7, 8, 9)
LINKS_WEIGHTS: Final = (4, 9, 13, 16, 17, 15, 12, 8, 6)  # mean ~ 4.9
LINKS_CUMULATIVE: Final = tuple(
    sum(LINKS_WEIGHTS[: i + 1]) / sum(LINKS_WEIGHTS) for i in range(len(LINKS_WEIGHTS))
)


def _world() -> World:
    assert WORLD is not None, "the world is set before the workers start"
    return WORLD


# Folds a title into URL words quickly (titles only hold these non-ASCII letters).
_URL_FOLD: Final = str.maketrans(
    {
        **dict.fromkeys(":;,.!?–'\"()&/%", " "),
        **dict(
            zip("øæåéèêëüöäóòíìáàçñşćčśńłżźšžőúý", "oeaeeeeuoaooiiaacnsccsnlzzszouy", strict=True)
        ),
        "æ": "ae",
        "ß": "ss",
    }
)


class ArticleMaker:
    """Makes the articles of one chunk (and their links) from a chunk-seeded generator."""

    def __init__(self, world: World, chunk_seed: int) -> None:
        self.w = world
        self.rng = random.Random(chunk_seed)
        self.links: list[Row] = []
        self.urls: list[Row] = []
        self.entity_ids = array("i")
        self.source_ids = array("i")

    def _entity_display(self, entity_id: int) -> str:
        name = self.w.catalogue.names[entity_id]
        if self.w.catalogue.kinds[entity_id] == "PERSON" and self.rng.random() < 0.5:
            return name.rsplit(" ", 1)[-1]
        return name

    def _published_at(self, article_id: int) -> datetime:
        rng = self.rng
        q = (article_id - 0.5) / self.w.articles
        age = SPAN_DAYS * (1.0 - q) ** 1.6 * 86400.0
        age += rng.uniform(-3, 3) * 3600.0
        if rng.random() < 0.02:  # found late: published days before it was ingested
            age += rng.uniform(0, 14) * 86400.0
        age = min(max(age, 60.0 + rng.random() * 600.0), SPAN_DAYS * 86400.0 + 30 * 86400.0)
        return self.w.now - timedelta(seconds=round(age))

    def _entities(self) -> list[int]:
        rng = self.rng
        cum = self.w.entity_cumulative
        total = cum[-1]
        by_rank = self.w.catalogue.by_rank
        k = LINKS_PER_ARTICLE[bisect.bisect_left(LINKS_CUMULATIVE, rng.random())]
        k = min(k, len(by_rank))
        chosen: dict[int, None] = {}
        while len(chosen) < k:
            rank = bisect.bisect_right(cum, rng.random() * total)
            chosen[by_rank[min(rank, len(by_rank) - 1)]] = None
        return list(chosen)

    def _two(self, words: Zipf) -> tuple[str, str]:
        first = words.draw(self.rng)
        for _ in range(5):
            second = words.draw(self.rng)
            if second != first:
                break
        return first, second

    def _en_text(self, e1: str, e2: str, place: str) -> tuple[str, str]:
        rng, w = self.rng, self.w
        noun, noun2 = self._two(w.en_nouns)
        adj = w.en_adjectives.draw(rng)
        base, third, past = w.en_verbs.draw(rng)
        prep = rng.choice(EN_PREPOSITIONS)
        form = rng.randrange(6)
        if form == 0:
            title = f"{e1} {third} {adj} {noun} {prep} {place}"
        elif form == 1:
            title = f"{_capitalise(adj)} {noun} {past} as {e1} {third} {noun2}"
        elif form == 2:
            title = f"{e1} and {e2} {base} {noun} {noun2}"
        elif form == 3:
            title = f"{_capitalise(noun)} {noun2}: {e1} {third} {adj} {w.en_nouns.draw(rng)}"
        elif form == 4:
            title = f"How {e1} {past} the {noun} {noun2}"
        else:
            title = f"{place}: {adj} {noun} {past} {prep} {noun2}"
        sentences = [
            f"{e1} {rng.choice(EN_SPEECH)} on {rng.choice(WEEKDAYS)} that the "
            f"{w.en_adjectives.draw(rng)} {w.en_nouns.draw(rng)} would {w.en_verbs.draw(rng)[0]} "
            f"the {noun} {rng.choice(EN_PREPOSITIONS)} {place}, {rng.choice(EN_CLAUSES)}."
        ]
        if rng.random() < 0.7:
            sentences.append(
                f"The {w.en_nouns.draw(rng)} {w.en_verbs.draw(rng)[2]} {rng.randint(2, 60)} "
                f"percent {rng.choice(EN_PREPOSITIONS)} the {w.en_nouns.draw(rng)}, while {e2} "
                f"{w.en_verbs.draw(rng)[2]} the {w.en_adjectives.draw(rng)} {noun2}."
            )
        if rng.random() < 0.45:
            sentences.append(
                f"Critics pointed to the {w.tail.draw(rng)} {w.en_nouns.draw(rng)} "
                f"{rng.choice(EN_PREPOSITIONS)} {rng.choice(REAL_PLACES)}."
            )
        return title, " ".join(sentences)

    def _nb_text(self, e1: str, e2: str, place: str) -> tuple[str, str]:
        rng, w = self.rng, self.w
        noun, noun2 = self._two(w.nb_nouns)
        adj = w.nb_adjectives.draw(rng)
        inf, pres, past = w.nb_verbs.draw(rng)
        prep = rng.choice(NB_PREPOSITIONS)
        form = rng.randrange(5)
        if form == 0:
            title = f"{e1} {pres} {adj} {noun} {prep} {place}"
        elif form == 1:
            title = f"{_capitalise(noun)} {past} {noun2} {prep} {place}"
        elif form == 2:
            title = f"{e1}: – {_capitalise(noun)} må {inf} {noun2}"
        elif form == 3:
            title = f"{e1} og {e2} {pres} {noun}"
        else:
            title = f"{place}: {_capitalise(adj)} {noun} {past} {noun2}"
        sentences = [
            f"{e1} {w.nb_verbs.draw(rng)[2]} {rng.choice(NB_WEEKDAYS)} {noun} {prep} {place}, "
            f"{rng.choice(NB_CLAUSES)}."
        ]
        if rng.random() < 0.7:
            sentences.append(
                f"{_capitalise(w.nb_nouns.draw(rng))} {w.nb_verbs.draw(rng)[2]} med "
                f"{rng.randint(2, 60)} prosent, mens {e2} {w.nb_verbs.draw(rng)[1]} "
                f"{w.nb_adjectives.draw(rng)} {noun2}."
            )
        if rng.random() < 0.45:
            sentences.append(f"Kritikerne peker på {w.tail.draw(rng)}-saken i {place}.")
        return title, " ".join(sentences)

    def article(self, article_id: int) -> Row:
        rng, w = self.rng, self.w
        language = "nb" if rng.random() < NORWEGIAN_SHARE else "en"
        source = w.sources[w.sources_by_language[language].draw(rng) - 1]
        published = self._published_at(article_id)
        entity_ids = self._entities()
        names = [self._entity_display(e) for e in entity_ids[:2]]
        e1 = names[0]
        e2 = names[1] if len(names) > 1 else rng.choice(REAL_PLACES)
        place = rng.choice(REAL_PLACES[:33] if language == "nb" else REAL_PLACES)
        if language == "nb":
            title, summary = self._nb_text(e1, e2, place)
            section = rng.choice(NB_SECTIONS)
            section_path = section.translate(_URL_FOLD)
            authors_from = (NORDIC_FIRST_NAMES, NORDIC_LAST_NAMES)
        else:
            title, summary = self._en_text(e1, e2, place)
            section = rng.choice(EN_SECTIONS)
            section_path = section
            authors_from = (FIRST_NAMES, LAST_NAMES)
        title = _capitalise(title)
        body = None
        if w.body_sentences:
            more = [
                (self._nb_text if language == "nb" else self._en_text)(e2, e1, place)[1]
                for _ in range(w.body_sentences)
            ]
            body = "\n\n".join([summary, *more])
        slug = "-".join(title.lower().translate(_URL_FOLD).split()[:12])
        day = published.strftime("%Y/%m/%d")
        canonical = f"https://{source.domain}/{section_path}/{day}/{slug}-{article_id}"
        url = canonical if rng.random() < 0.9 else f"https://{source.domain}/a/{article_id}"
        external_id = f"{source.id}-{article_id}" if rng.random() < 0.6 else None
        authors = [
            f"{rng.choice(authors_from[0])} {rng.choice(authors_from[1])}"
            for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3)))
        ]
        tags = list(
            dict.fromkeys(
                (w.nb_nouns if language == "nb" else w.en_nouns).draw(rng)
                for _ in range(rng.randrange(5))
            )
        )
        image: tuple[object, ...] = (None, None, None, None, None, None)
        if rng.random() < 0.75:
            width = rng.choice((1200, 1600, 2048))
            image = (
                f"https://img.{source.domain}/{day[:7]}/{article_id}.jpg",
                f"Photo: {rng.choice(authors_from[0])} {rng.choice(authors_from[1])}"
                f" / {rng.choice(AGENCIES)}",
                f"{e1} in {place}." if language == "en" else f"{e1} i {place}.",
                title,
                width,
                width * 9 // 16,
            )
        estimated = rng.random() < 0.01
        ingested = published + timedelta(seconds=rng.randint(30, 3600))
        updated = (
            ingested + timedelta(seconds=rng.randint(0, 7200)) if rng.random() < 0.2 else ingested
        )
        # Links: the first entity is the most salient.
        saliences = sorted((rng.uniform(0.01, 0.7) for _ in entity_ids), reverse=True)
        saliences[0] = rng.uniform(0.6, 1.0)
        for entity_id, salience in zip(entity_ids, saliences, strict=True):
            mentions = min(5, max(1, round(salience * 5 + rng.uniform(-1, 1))))
            self.links.append((article_id, entity_id, round(salience, 4), mentions, published))
            self.entity_ids.append(entity_id)
        self.source_ids.append(source.id)
        # Every URL seen for the article, as ingest records them (and migration 0002 backfills).
        self.urls.append((canonical, article_id))
        if url != canonical:
            self.urls.append((url, article_id))
        return (
            article_id, source.id, url, canonical, external_id, title, summary, body, authors,
            language, section, tags, *image, published, estimated, updated, ingested,
            rng.randbytes(32),
        )  # fmt: skip

    def articles(self, start: int, end: int) -> Iterator[Row]:
        for article_id in range(start, end):
            yield self.article(article_id)


@dataclass(frozen=True, slots=True)
class ChunkResult:
    articles: int
    links: int
    urls: int
    entity_ids: bytes  # array('i') of every link's entity id
    source_ids: bytes  # array('i') of every article's source id
    seconds: float


async def _connect(dsn: str) -> asyncpg.Connection[Any]:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn)
    await conn.execute("SET synchronous_commit = off")
    return conn


async def _copy_article_chunk(dsn: str, start: int, end: int) -> ChunkResult:
    started = time.perf_counter()
    world = _world()
    maker = ArticleMaker(world, world.seed * 1_000_003 + start)
    conn = await _connect(dsn)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "articles", records=maker.articles(start, end), columns=ARTICLE_COLUMNS
            )
            await conn.copy_records_to_table(
                "article_entities", records=maker.links, columns=LINK_COLUMNS
            )
            if "article_urls" in world.tables:
                await conn.copy_records_to_table(
                    "article_urls", records=maker.urls, columns=URL_COLUMNS
                )
    finally:
        await conn.close()
    return ChunkResult(
        end - start,
        len(maker.links),
        len(maker.urls) if "article_urls" in world.tables else 0,
        maker.entity_ids.tobytes(),
        maker.source_ids.tobytes(),
        time.perf_counter() - started,
    )


def load_article_chunk(dsn: str, start: int, end: int) -> ChunkResult:
    return asyncio.run(_copy_article_chunk(dsn, start, end))


async def _copy_entity_chunk(dsn: str, start: int, counts: list[int]) -> tuple[int, int]:
    cat = _world().catalogue
    end = start + len(counts)
    rows = [
        (i, cat.kinds[i], cat.names[i], cat.slugs[i], cat.wikidata[i], cat.descriptions[i], n)
        for i, n in zip(range(start, end), counts, strict=True)
    ]
    aliases = [(i, alias) for i in range(start, end) for alias in cat.aliases[i]]
    conn = await _connect(dsn)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table("entities", records=rows, columns=ENTITY_COLUMNS)
            await conn.copy_records_to_table(
                "entity_aliases", records=aliases, columns=ALIAS_COLUMNS
            )
    finally:
        await conn.close()
    return len(rows), len(aliases)


def load_entity_chunk(dsn: str, start: int, counts: list[int]) -> tuple[int, int]:
    return asyncio.run(_copy_entity_chunk(dsn, start, counts))


# --------------------------------------------------------------------------------------------
# Schema: drop and restore indexes and constraints; triggers; counters
# --------------------------------------------------------------------------------------------

SELECT_INDEXES: Final = """
SELECT tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename = ANY($1::text[])
ORDER BY tablename, indexname
"""

SELECT_CONSTRAINTS: Final = """
SELECT c.conrelid::regclass::text AS tablename, c.conname, c.contype::text AS contype,
       pg_get_constraintdef(c.oid) AS definition
FROM pg_constraint c
WHERE c.conrelid = ANY(SELECT ('public.' || t)::regclass FROM unnest($1::text[]) t)
  AND c.contype IN ('p', 'u', 'f', 'x')
ORDER BY 1, 2
"""


@dataclass(frozen=True, slots=True)
class SchemaSnapshot:
    """The indexes and key constraints of the tables, as the catalog defines them."""

    tables: tuple[str, ...]
    indexes: list[tuple[str, str, str]]  # table, index, CREATE INDEX statement
    constraints: list[tuple[str, str, str, str]]  # table, name, type, definition

    @classmethod
    async def read(cls, conn: asyncpg.Connection[Any]) -> SchemaSnapshot:
        present = await conn.fetch(
            "SELECT t FROM unnest($1::text[]) t WHERE to_regclass('public.' || t) IS NOT NULL",
            [*TABLES, *OPTIONAL_TABLES],
        )
        tables = tuple(str(r[0]) for r in present)
        indexes = [(r[0], r[1], r[2]) for r in await conn.fetch(SELECT_INDEXES, list(tables))]
        constraints = [
            (r[0], r[1], r[2], r[3]) for r in await conn.fetch(SELECT_CONSTRAINTS, list(tables))
        ]
        if any(kind == "x" for _, _, kind, _ in constraints):
            raise SystemExit("exclusion constraints are not handled; extend bench/generate.py")
        return cls(tables, indexes, constraints)

    @property
    def kept_primary_keys(self) -> set[str]:
        """Primary keys stay during the load: their keys arrive in order (ids)."""
        return {
            name for _, name, kind, _ in self.constraints
            if kind == "p" and name not in REBUILT_PRIMARY_KEYS
        }  # fmt: skip

    @property
    def dropped_indexes(self) -> list[tuple[str, str, str]]:
        return [i for i in self.indexes if i[1] not in self.kept_primary_keys]

    @property
    def unique_constraints(self) -> list[tuple[str, str, str, str]]:
        """Unique keys (and the rebuilt primary keys), re-adopted from their rebuilt index."""
        return [
            c for c in self.constraints
            if c[2] == "u" or (c[2] == "p" and c[1] in REBUILT_PRIMARY_KEYS)
        ]  # fmt: skip

    @property
    def foreign_keys(self) -> list[tuple[str, str, str, str]]:
        return [c for c in self.constraints if c[2] == "f"]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def drop_for_load(conn: asyncpg.Connection[Any], snapshot: SchemaSnapshot) -> None:
    unique = {name for _, name, _, _ in snapshot.unique_constraints}
    async with conn.transaction():
        for table, name, _, _ in [*snapshot.foreign_keys, *snapshot.unique_constraints]:
            await conn.execute(f"ALTER TABLE {_quote(table)} DROP CONSTRAINT {_quote(name)}")
        for _, name, _ in snapshot.dropped_indexes:
            if name not in unique:
                await conn.execute(f"DROP INDEX {_quote(name)}")
        for table, trigger in COUNT_TRIGGERS:
            await conn.execute(f"ALTER TABLE {_quote(table)} DISABLE TRIGGER {_quote(trigger)}")


async def _run_parallel(dsn: str, statements: list[str], connections: int) -> list[float]:
    """Run the statements on `connections` sessions, in order; returns each one's seconds."""
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in enumerate(statements):
        queue.put_nowait(item)
    seconds = [0.0] * len(statements)

    async def worker() -> None:
        conn = await _connect(dsn)
        try:
            await conn.execute("SET maintenance_work_mem = '2GB'")
            while not queue.empty():
                index, sql = queue.get_nowait()
                started = time.perf_counter()
                await conn.execute(sql)
                seconds[index] = time.perf_counter() - started
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return seconds


# The slowest builds first, so the sessions finish at about the same time.
_BUILD_ORDER: Final = (
    "articles_search_idx", "entities_search_trgm_idx", "article_entities_entity_feed_idx",
    "articles_canonical_url_key", "articles_url_idx",
)  # fmt: skip


async def restore_after_load(dsn: str, snapshot: SchemaSnapshot, connections: int) -> None:
    """Recreate the indexes (in parallel sessions), then the constraints, then check."""
    builds = sorted(
        snapshot.dropped_indexes,
        key=lambda i: (_BUILD_ORDER.index(i[1]) if i[1] in _BUILD_ORDER else 99, i[1]),
    )
    started = time.perf_counter()
    # A unique constraint's index is built like any other (CREATE UNIQUE INDEX takes a SHARE
    # lock, so builds on one table run side by side), then adopted by ADD CONSTRAINT ... USING
    # INDEX, which gives the constraint and index of the migration, under the same names.
    seconds = await _run_parallel(dsn, [sql for _, _, sql in builds], connections)
    slowest = sorted(zip(seconds, (name for _, name, _ in builds), strict=True), reverse=True)
    print(
        f"  {len(builds)} indexes built in {time.perf_counter() - started:.1f}s "
        f"(slowest: {', '.join(f'{n} {s:.1f}s' for s, n in slowest[:5])})"
    )
    started = time.perf_counter()
    conn = await _connect(dsn)
    try:
        await conn.execute("SET work_mem = '1GB'")
        for table, name, kind, _ in snapshot.unique_constraints:
            key = "PRIMARY KEY" if kind == "p" else "UNIQUE"
            await conn.execute(
                f"ALTER TABLE {_quote(table)} ADD CONSTRAINT {_quote(name)} "
                f"{key} USING INDEX {_quote(name)}"
            )
        # Each foreign key is validated by one anti-join (they lock both tables: one by one).
        for table, name, _, definition in snapshot.foreign_keys:
            await conn.execute(
                f"ALTER TABLE {_quote(table)} ADD CONSTRAINT {_quote(name)} {definition}"
            )
        for table, trigger in COUNT_TRIGGERS:
            await conn.execute(f"ALTER TABLE {_quote(table)} ENABLE TRIGGER {_quote(trigger)}")
        after = await SchemaSnapshot.read(conn)
        disabled = await conn.fetchval(
            "SELECT count(*) FROM pg_trigger WHERE tgname = ANY($1::text[]) AND tgenabled <> 'O'",
            [trigger for _, trigger in COUNT_TRIGGERS],
        )
    finally:
        await conn.close()
    print(f"  constraints added and foreign keys validated in {time.perf_counter() - started:.1f}s")
    if after != snapshot or disabled:
        raise SystemExit(f"schema differs after the load:\n{after}\n!=\n{snapshot}")
    print("  indexes, constraints and triggers equal the migrated schema")


FIX_ENTITY_COUNTS: Final = """
UPDATE entities e SET article_count = coalesce(n.count, 0)
FROM entities e2 LEFT JOIN (
    SELECT entity_id, count(*)::int AS count FROM article_entities GROUP BY entity_id
) n ON n.entity_id = e2.id
WHERE e.id = e2.id AND e.article_count IS DISTINCT FROM coalesce(n.count, 0)
"""

FIX_SOURCE_COUNTS: Final = """
UPDATE sources s SET article_count = coalesce(n.count, 0)
FROM sources s2 LEFT JOIN (
    SELECT source_id, count(*)::int AS count FROM articles GROUP BY source_id
) n ON n.source_id = s2.id
WHERE s.id = s2.id AND s.article_count IS DISTINCT FROM coalesce(n.count, 0)
"""


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


class Phases:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, int]] = []
        self.started = time.perf_counter()

    def add(self, name: str, seconds: float, rows: int = 0) -> None:
        self.rows.append((name, seconds, rows))
        rate = f"{rows / seconds:>12,.0f} rows/s" if rows and seconds > 0 else ""
        print(f"{name:<34} {seconds:8.1f}s {rows:>12,} rows {rate}", flush=True)

    def total(self) -> float:
        return time.perf_counter() - self.started


def _database_name(dsn: str) -> str:
    name = urlsplit(dsn).path.lstrip("/")
    if not name:
        raise SystemExit("--dsn must name a database, e.g. postgresql://.../newsgraph_bench")
    return name


def _admin_dsn(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/postgres"))


async def recreate_database(dsn: str) -> None:
    name = _database_name(dsn)
    if not name.startswith("newsgraph_bench"):
        raise SystemExit(
            f"--create only (re)creates databases named newsgraph_bench*, not {name!r}"
        )
    conn: asyncpg.Connection[Any] = await asyncpg.connect(_admin_dsn(dsn))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {_quote(name)}")
    finally:
        await conn.close()


async def prepare(dsn: str) -> SchemaSnapshot:
    conn = await _connect(dsn)
    try:
        snapshot = await SchemaSnapshot.read(conn)
        for table in snapshot.tables:
            if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
                raise SystemExit(f"table {table} is not empty; use --create to start afresh")
        await drop_for_load(conn, snapshot)
        return snapshot
    finally:
        await conn.close()


async def copy_sources(dsn: str, sources: list[SourceSpec], counts: list[int]) -> None:
    conn = await _connect(dsn)
    try:
        rows = [(s.id, s.domain, s.name, s.country, s.language, counts[s.id]) for s in sources]
        await conn.copy_records_to_table("sources", records=rows, columns=SOURCE_COLUMNS)
    finally:
        await conn.close()


async def copy_redirects(dsn: str, catalogue: Catalogue, seed: int, now: datetime) -> int:
    """Entities merged into others: old ids above the live ones, old slugs unused."""
    rng = random.Random(seed * 31 + 3)
    count = len(catalogue.names) - 1
    taken = set(catalogue.slugs)
    rows: list[Row] = []
    for k in range(1, round(count * REDIRECT_SHARE) + 1):
        target = catalogue.by_rank[min(int(rng.paretovariate(0.6)) - 1, count - 1)]
        slug = catalogue.slugs[target]
        old_slug = f"{slug}-{rng.choice(('x', 'old', 'dup', 'alt'))}{k}"
        if old_slug in taken:
            continue
        taken.add(old_slug)
        merged = now - timedelta(seconds=rng.randint(3600, SPAN_DAYS * 86400))
        rows.append((count + k, old_slug, target, merged))
    conn = await _connect(dsn)
    try:
        await conn.copy_records_to_table("entity_redirects", records=rows, columns=REDIRECT_COLUMNS)
    finally:
        await conn.close()
    return len(rows)


async def finish(dsn: str, phases: Phases, vacuum: bool, tables: tuple[str, ...]) -> None:
    conn = await _connect(dsn)
    try:
        await conn.execute("SET work_mem = '1GB'")
        started = time.perf_counter()
        for table in ("sources", "articles", "entities"):
            top = f"(SELECT coalesce(max(id), 0) FROM {table})"
            if table == "entities" and "entity_redirects" in tables:
                top = f"greatest({top}, (SELECT max(old_id) FROM entity_redirects))"
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {top} + 1, false)"
            )
        fixed_entities = int((await conn.execute(FIX_ENTITY_COUNTS)).split()[-1])
        fixed_sources = int((await conn.execute(FIX_SOURCE_COUNTS)).split()[-1])
        phases.add("check counters + sequences", time.perf_counter() - started)
        if fixed_entities or fixed_sources:
            print(f"  WARNING: fixed {fixed_entities} entity and {fixed_sources} source counters")
        else:
            print("  article_count counters exact (the check UPDATEs changed 0 rows)")
        started = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '2GB'")
        for table in tables:
            await conn.execute(f"{'VACUUM (ANALYZE)' if vacuum else 'ANALYZE'} {table}")
        phases.add("vacuum + analyze" if vacuum else "analyze", time.perf_counter() - started)
    finally:
        await conn.close()


async def summary(dsn: str, tables: tuple[str, ...]) -> None:
    conn = await _connect(dsn)
    try:
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(f"\ndatabase size: {size}")
        rows = await conn.fetch(
            """
            SELECT c.relname, c.reltuples::bigint AS rows,
                   pg_size_pretty(pg_table_size(c.oid)) AS heap,
                   pg_size_pretty(pg_indexes_size(c.oid)) AS indexes
            FROM pg_class c WHERE c.oid = ANY(SELECT ('public.' || t)::regclass
                                              FROM unnest($1::text[]) t)
            ORDER BY pg_total_relation_size(c.oid) DESC
            """,
            list(tables),
        )
        for r in rows:
            print(
                f"  {r['relname']:<18} {r['rows']:>12,} rows  table {r['heap']:>9}  "
                f"indexes {r['indexes']:>9}"
            )
        top = await conn.fetch(
            "SELECT name, kind, article_count FROM entities ORDER BY article_count DESC LIMIT 3"
        )
        articles = await conn.fetchval("SELECT count(*) FROM articles")
        for r in top:
            share = 100 * r["article_count"] / max(articles, 1)
            print(
                f"  top entity {r['name']!r} ({r['kind']}): {r['article_count']:,} "
                f"articles ({share:.1f}%)"
            )
    finally:
        await conn.close()


def _chunks(total: int, size: int, first: int = 1) -> list[tuple[int, int]]:
    return [(s, min(s + size, first + total)) for s in range(first, first + total, size)]


def main(argv: Sequence[str] | None = None) -> int:
    global WORLD
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--dsn", required=True, help="postgresql://... of the target database")
    parser.add_argument("--articles", type=int, required=True, help="how many articles")
    parser.add_argument("--entities", type=int, help="how many entities (default: --articles)")
    parser.add_argument("--sources", type=int, default=500, help="how many sources (500)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--create", action="store_true", help="drop and create the database")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="processes")
    parser.add_argument("--chunk", type=int, default=20_000, help="articles per COPY (20000)")
    parser.add_argument("--now", help="newest publication time, ISO 8601 (default: today UTC)")
    parser.add_argument(
        "--body-sentences", type=int, default=0, help="body paragraphs per article (0: no body)"
    )
    parser.add_argument("--no-vacuum", action="store_true", help="ANALYZE only, no VACUUM")
    args = parser.parse_args(argv)
    n_articles: int = args.articles
    n_entities: int = args.entities if args.entities is not None else n_articles
    if n_articles < 1 or n_entities < 1 or args.sources < 1:
        parser.error("--articles, --entities and --sources must be at least 1")
    now = (
        datetime.fromisoformat(args.now).astimezone(UTC)
        if args.now
        else datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    dsn: str = args.dsn
    phases = Phases()
    print(
        f"generating {n_articles:,} articles, {n_entities:,} entities, {args.sources} sources "
        f"(seed {args.seed}, now {now:%Y-%m-%d %H:%M}Z, {args.workers} workers) into "
        f"{_database_name(dsn)}",
        flush=True,
    )

    started = time.perf_counter()
    if args.create:
        asyncio.run(recreate_database(dsn))
    migrate.upgrade(dsn)
    snapshot = asyncio.run(prepare(dsn))
    phases.add("create + migrate + drop indexes", time.perf_counter() - started)

    started = time.perf_counter()
    sources = build_sources(args.sources, args.seed)
    catalogue = build_catalogue(n_entities, args.seed)
    by_language: dict[str, Zipf] = {}
    for language in ("en", "nb"):
        ids = [s.id for s in sources if s.language == language] or [s.id for s in sources]
        by_language[language] = Zipf.of(ids, exponent=1.0, offset=2.0)
    tail = _tail_words(args.seed, 20_000)
    WORLD = World(
        seed=args.seed,
        articles=n_articles,
        now=now,
        tables=snapshot.tables,
        body_sentences=args.body_sentences,
        sources=sources,
        sources_by_language=by_language,
        catalogue=catalogue,
        # Entity popularity: weight 1 / (rank + 6): the top few entities appear in 5-10%
        # of the articles, the long tail in a handful or none.
        entity_cumulative=zipf_cumulative(n_entities, 1.0, 5.0),
        tail=Zipf.of(tail, exponent=1.05, offset=10.0),
        en_nouns=Zipf.of(EN_NOUNS, 0.9, 3.0),
        en_adjectives=Zipf.of(EN_ADJECTIVES, 0.8, 3.0),
        en_verbs=Zipf.of(EN_VERBS, 0.8, 3.0),
        nb_nouns=Zipf.of(NB_NOUNS, 0.9, 3.0),
        nb_adjectives=Zipf.of(NB_ADJECTIVES, 0.8, 3.0),
        nb_verbs=Zipf.of(NB_VERBS, 0.8, 3.0),
    )
    phases.add("build entity catalogue (python)", time.perf_counter() - started, n_entities)

    # fork: the workers inherit WORLD (no event loop is running in this process now).
    context = multiprocessing.get_context("fork")
    entity_counts = collections.Counter[int]()
    source_counts = collections.Counter[int]()
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
        started = time.perf_counter()
        futures: list[Future[ChunkResult]] = [
            pool.submit(load_article_chunk, dsn, start, end)
            for start, end in _chunks(n_articles, args.chunk)
        ]
        links = urls = 0
        for future in futures:
            result = future.result()
            links += result.links
            urls += result.urls
            entity_counts.update(array("i", result.entity_ids))
            source_counts.update(array("i", result.source_ids))
        elapsed = time.perf_counter() - started
        phases.add("articles + links (COPY)", elapsed, n_articles + links + urls)
        print(
            f"  {n_articles:,} articles ({n_articles / elapsed:,.0f}/s), {links:,} links "
            f"({links / n_articles:.2f} per article)" + (f", {urls:,} urls" if urls else "")
        )

        started = time.perf_counter()
        entity_chunk = max(args.chunk * 2, 10_000)
        entity_futures = [
            pool.submit(
                load_entity_chunk, dsn, start, [entity_counts.get(i, 0) for i in range(start, end)]
            )
            for start, end in _chunks(n_entities, entity_chunk)
        ]
        aliases = 0
        for entity_future in entity_futures:
            aliases += entity_future.result()[1]
        asyncio.run(
            copy_sources(dsn, sources, [source_counts.get(i, 0) for i in range(len(sources) + 1)])
        )
        redirects = 0
        if "entity_redirects" in snapshot.tables:
            redirects = asyncio.run(copy_redirects(dsn, catalogue, args.seed, now))
        phases.add(
            "entities + aliases + sources (COPY)",
            time.perf_counter() - started,
            n_entities + aliases + len(sources) + redirects,
        )

    started = time.perf_counter()
    asyncio.run(restore_after_load(dsn, snapshot, connections=max(2, args.workers)))
    phases.add("indexes + constraints", time.perf_counter() - started)
    asyncio.run(finish(dsn, phases, not args.no_vacuum, snapshot.tables))
    total = phases.total()
    rows = n_articles + links + urls + n_entities + aliases + len(sources) + redirects
    print(f"{'total':<34} {total:8.1f}s {rows:>12,} rows {rows / total:>12,.0f} rows/s")
    asyncio.run(summary(dsn, snapshot.tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
