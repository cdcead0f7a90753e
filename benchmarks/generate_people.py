"""Generate contacts with known persons: CRM noise on purpose, and traps that are not duplicates.

Each person has a first and last name, a private or work address, a mobile phone, a company with
its street, postcode and city. A share of persons appear again (in another "source") with typos,
swapped names, dropped accents, other phone formatting, Gmail dot and ``+tag`` variants, another
address of theirs, missing fields. Colleagues share a company switchboard number and ``info@``
addresses without being one person. ``truth`` names the person of every row.
"""

from __future__ import annotations

import random

import polars as pl

FIRST = [
    "Anna",
    "Erik",
    "Åsa",
    "Lars",
    "Maria",
    "Johan",
    "Karin",
    "Per",
    "Eva",
    "Björn",
    "Sofia",
    "Mikael",
    "Ingrid",
    "Olof",
    "Linnéa",
    "Göran",
    "Emma",
    "Oskar",
    "Sara",
    "Nils",
    "Elin",
    "Jonas",
    "Hanna",
    "Anders",
    "Frida",
    "Magnus",
    "Ida",
    "Fredrik",
    "Malin",
    "Henrik",
    "Lena",
    "Stefan",
    "Maja",
    "Viktor",
    "Alva",
    "Hugo",
    "Ebba",
    "Axel",
    "Wilma",
    "Liam",
    "Olivia",
    "Noah",
    "Alice",
    "William",
    "Astrid",
    "Elias",
    "Saga",
    "Leo",
]
LAST = [
    "Andersson",
    "Johansson",
    "Karlsson",
    "Nilsson",
    "Eriksson",
    "Larsson",
    "Olsson",
    "Persson",
    "Svensson",
    "Gustafsson",
    "Pettersson",
    "Jönsson",
    "Öberg",
    "Lindström",
    "Åkesson",
    "Bergqvist",
    "Sjöberg",
    "Holm",
    "Lindqvist",
    "Engström",
    "Hedlund",
    "Sandberg",
    "Forsberg",
    "Lundgren",
    "Mattsson",
    "Berglund",
    "Nyström",
    "Axelsson",
    "Hermansson",
    "Falk",
    "Björk",
    "Wallin",
    "Dahl",
    "Sundberg",
    "Lind",
    "Strand",
    "Ek",
    "Blom",
]
# Surnames composed like Swedish ones (Berg + ström), a few hundred, so that a million contacts are
# not all namesakes.
_STEMS = [
    "Berg",
    "Lind",
    "Sjö",
    "Ek",
    "Holm",
    "Ny",
    "Sand",
    "Dahl",
    "Lund",
    "Fors",
    "Hed",
    "Ahl",
    "Bergs",
    "Sten",
    "Wall",
    "Ström",
    "Nord",
    "Öst",
    "Väst",
    "Alm",
    "Björk",
    "Gran",
    "Hag",
    "Lid",
    "Mal",
    "Ros",
    "Sval",
    "Tall",
    "Åker",
    "Ängs",
    "Ask",
    "Bäck",
    "Falk",
    "Hjort",
    "Kvist",
    "Lönn",
    "Rask",
    "Sköld",
    "Strand",
    "Vik",
]
_ENDS = ["ström", "berg", "qvist", "gren", "lund", "dahl", "man", "ell", "bom", "sten", "by", "vall", "hed", "blad"]
LAST = LAST + [stem + end for stem in _STEMS for end in _ENDS]
FIRST = FIRST + [
    "Agnes",
    "Gustav",
    "Klara",
    "Filip",
    "Tove",
    "Isak",
    "Moa",
    "Albin",
    "Signe",
    "Ludvig",
    "Vera",
    "Måns",
    "Tilda",
    "Rasmus",
    "Nora",
    "Sixten",
    "Greta",
    "Kerstin",
    "Ulf",
    "Birgitta",
    "Lennart",
    "Margareta",
    "Bengt",
    "Gunnar",
    "Ingela",
    "Jenny",
    "Kristoffer",
    "Linda",
    "Marcus",
    "Niklas",
    "Petra",
    "Robin",
    "Sebastian",
    "Therese",
    "Ulrika",
    "Vilhelm",
    "Ylva",
    "Åke",
    "Östen",
    "Annika",
    "Camilla",
    "Daniel",
    "Emelie",
    "Fanny",
    "Hampus",
    "Isabelle",
    "Josefin",
    "Kevin",
    "Louise",
    "Mats",
]
STREETS = [
    "Storgatan",
    "Kungsgatan",
    "Drottninggatan",
    "Sveavägen",
    "Vasagatan",
    "Östra Hamngatan",
    "Björkvägen",
    "Skolgatan",
    "Kyrkogatan",
    "Parkvägen",
    "Ringvägen",
    "Hamngatan",
    "Järnvägsgatan",
    "Torggatan",
]
CITIES = [
    ("Stockholm", "11"),
    ("Göteborg", "41"),
    ("Malmö", "21"),
    ("Uppsala", "75"),
    ("Västerås", "72"),
    ("Örebro", "70"),
    ("Linköping", "58"),
    ("Umeå", "90"),
    ("Lund", "22"),
    ("Gävle", "80"),
]
FREE = ["gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "telia.com", "icloud.com"]
ASCII = str.maketrans("åäöéÅÄÖÉ", "aaoeAAOE")


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 1)
    op = rng.random()
    if op < 0.33:
        return text[:i] + text[i + 1 :]
    if op < 0.66:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + rng.choice("aeinorst") + text[i + 1 :]


def generate(persons: int, seed: int = 3, dup_share: float = 0.35, companies: int | None = None) -> pl.DataFrame:
    rng = random.Random(seed)
    companies = companies or max(persons // 8, 5)
    company_rows = []
    for c in range(companies):
        city, prefix = rng.choice(CITIES)
        company_rows.append(
            (
                f"{rng.choice(LAST)} {rng.choice(['AB', 'Konsult', 'Bygg AB', 'Data', 'Design'])} {c}",
                f"{rng.choice(STREETS)} {rng.randint(1, 120)}",
                f"{prefix}{rng.randint(100, 999)}",
                city,
                f"08-{rng.randint(100, 999)} {rng.randint(100, 999)} 00",
                f"firma{c}.se",
            )
        )
    rows: list[dict[str, object]] = []
    taken: set[str] = set()

    def emit(person: int, **fields: object) -> None:
        rows.append({"truth": str(person), **fields})

    for person in range(persons):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company, street, postcode, city, switchboard, domain = rng.choice(company_rows)
        mobile = f"07{rng.choice('02369')}{rng.randint(1_000_000, 9_999_999)}"
        local = f"{first}.{last}".lower().translate(ASCII) + (str(rng.randint(1, 999)) if rng.random() < 0.7 else "")
        private = f"{local}@{rng.choice(FREE)}"
        while private.replace(".", "") in taken:  # an address belongs to one person
            private = f"{local}{rng.randint(1, 99_999)}@{rng.choice(FREE)}"
        taken.add(private.replace(".", ""))
        work = f"{first[0]}.{last}".lower().translate(ASCII) + f"{person}@{domain}"
        email = private if rng.random() < 0.5 else work
        phone = f"{mobile[:3]}-{mobile[3:6]} {mobile[6:8]} {mobile[8:]}" if rng.random() < 0.8 else switchboard
        emit(
            person,
            first_name=first,
            last_name=last,
            email=email,
            phone=phone,
            company=company,
            street=street,
            postcode=postcode,
            city=city,
        )
        if rng.random() < 0.03:  # colleagues writing from the shared info@ address
            emit(
                person,
                first_name=first,
                last_name=last,
                email=f"info@{domain}",
                phone=switchboard,
                company=company,
                street=street,
                postcode=postcode,
                city=city,
            )
        if rng.random() >= dup_share:
            continue
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            f, l_, e, ph, co, st = first, last, email, phone, company, street
            if rng.random() < 0.3:
                f = _typo(rng, f)
            if rng.random() < 0.3:
                l_ = _typo(rng, l_)
            if rng.random() < 0.3:
                f, l_ = f.translate(ASCII).upper(), l_.translate(ASCII).upper()
            if rng.random() < 0.1:
                f, l_ = l_, f
            if rng.random() < 0.15:
                f = f[0] + "."
            roll = rng.random()
            if roll < 0.3 and e.endswith("@gmail.com"):
                name, _, host = e.partition("@")
                e = name.replace(".", "") + "+news@googlemail.com"
            elif roll < 0.55:
                e = private if e == work else work
            elif roll < 0.65:
                e = None  # type: ignore[assignment]
            roll = rng.random()
            if roll < 0.4:
                ph = "+46" + mobile[1:] if ph != switchboard else ph
            elif roll < 0.6:
                ph = None  # type: ignore[assignment]
            if rng.random() < 0.2:
                co = None  # type: ignore[assignment]
            if rng.random() < 0.2:
                st = _typo(rng, st)
            emit(
                person,
                first_name=f,
                last_name=l_,
                email=e,
                phone=ph,
                company=co,
                street=st,
                postcode=postcode if rng.random() < 0.9 else None,
                city=city,
            )
    rng.shuffle(rows)
    return pl.DataFrame(
        rows,
        schema={
            "truth": pl.String,
            "first_name": pl.String,
            "last_name": pl.String,
            "email": pl.String,
            "phone": pl.String,
            "company": pl.String,
            "street": pl.String,
            "postcode": pl.String,
            "city": pl.String,
        },
    )
