"""Generate a B2B CRM contact export with known persons, the noise real CRMs hold and hard negatives.

Columns as a CRM writes them: ``First name, Last name, Email, Phone, Company, Job title, City``;
``generate`` returns the export and, separately, the true person of every row.

Duplicates of a person (another record of theirs, as another system or a colleague typed it) carry:
names in capitals or without accents, a letter doubled or dropped, names cut short (``Kar Lind`` for
Karin Lindqvist), a first name reduced to an initial; the address in other case, masked as exports mask
it (``kar***@example.se``), replaced by a phone number or junk, left out, or the person's private
address instead of the work one; the phone in another format, with an extension, or left out; the
company with a typo or without its ``AB``; the city with a typo.

Hard negatives, which are different persons however alike they look:

- colleagues at one company: one company, city and switchboard, and work addresses at one domain;
- namesakes: the same common name in the same city, at other companies, some with free-mail addresses
  built from the name (``erik.johansson@yahoo.com`` and ``erik_johansson@outlook.com``);
- family members: one surname and one home, sharing a household mailbox and a home phone;
- first-name mailboxes at different companies (``anna@bolag3.se`` Anna Berg, ``anna@bolag4.se`` Anna Holm).

Seeded: the same ``persons`` and ``seed`` give the same file.
"""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl

from benchmarks.generate_people import ASCII, CITIES, FIRST, LAST

COLUMNS = ("First name", "Last name", "Email", "Phone", "Company", "Job title", "City")
TITLES = (
    "VD",
    "CFO",
    "Ekonomichef",
    "Inköpare",
    "Säljare",
    "Key Account Manager",
    "Marknadschef",
    "HR-chef",
    "Utvecklare",
    "Projektledare",
    "Konsult",
    "Controller",
    "Kundtjänst",
    "IT-chef",
    "Produktchef",
)
STEMS = ("Nord", "Syd", "Väst", "Öst", "Berg", "Sjö", "Ek", "Lind", "Gran", "Björk", "Stål", "Sten", "Ljus", "Kraft")
ENDS = ("vik", "dal", "bygg", "data", "tech", "konsult", "plast", "frakt", "energi", "vård", "media", "trä")
KINDS = ("AB", "AB", "AB", "Aktiebolag", "Group AB", "Sverige AB", "& Co AB")
FREE = ("gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "telia.com", "icloud.com", "live.se")


def _slug(text: str) -> str:
    return "".join(c for c in text.lower().translate(ASCII) if c.isalnum())


def _typo(rng: random.Random, text: str) -> str:
    """One letter doubled, dropped, swapped with the next or replaced (not the first)."""
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 1)
    op = rng.random()
    if op < 0.3:
        return text[: i + 1] + text[i] + text[i + 1 :]
    if op < 0.6:
        return text[:i] + text[i + 1 :]
    if op < 0.8:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + rng.choice("aeinorst") + text[i + 1 :]


def _phone_formats(rng: random.Random, digits: str) -> str:
    """A Swedish number (``0701234567`` or ``081234567``) as people write it."""
    national = digits[1:]
    mobile = digits.startswith("07")
    local = (
        f"{digits[:3]}-{digits[3:6]} {digits[6:8]} {digits[8:]}"
        if mobile
        else f"{digits[:2]}-{digits[2:5]} {digits[5:]}"
    )
    choices = [
        local,
        f"+46 {national[:2]} {national[2:5]} {national[5:]}",
        f"0046{national}",
        f"+46 (0){national[:2]}-{national[2:5]} {national[5:]}",
        digits,
    ]
    return rng.choice(choices)


def generate(persons: int, seed: int = 11) -> tuple[pl.DataFrame, list[str]]:
    """``persons`` people (about 1.4 records each): the export and each row's true person."""
    rng = random.Random(seed)
    companies = []
    names: set[str] = set()
    for c in range(max(persons // 12, 3)):
        # Company names are as distinct as real ones: a name already taken gets a second word.
        name = f"{rng.choice(STEMS)}{rng.choice(ENDS)}"
        while name in names:
            name = f"{name.split()[0]} {rng.choice(LAST)}{rng.choice(['', ' & Partners', ' Invest', ' Nordic'])}"
        names.add(name)
        kind = rng.choice(KINDS)
        city = rng.choice(CITIES)[0]
        companies.append((f"{name} {kind}", f"{_slug(name)}{c}.se", city, f"08{rng.randint(1000000, 9999999)}"))
    rows: list[tuple[object, ...]] = []
    truth: list[str] = []
    taken: set[str] = set()
    names_weight = [1.0 / (i + 1) ** 0.8 for i in range(len(FIRST))]
    last_weight = [1.0 / (i + 1) ** 0.6 for i in range(len(LAST))]

    def unique(address: str) -> str:
        local, _, domain = address.partition("@")
        candidate, n = address, 1
        while candidate in taken:
            n += 1
            candidate = f"{local}{n}@{domain}"
        taken.add(candidate)
        return candidate

    def person_record(
        first: str,
        last: str,
        company: tuple[str, str, str, str],
        *,
        email: str | None,
        digits: str | None = None,
        extension: int | None = None,
    ) -> dict[str, object]:
        phone = None
        if digits:
            phone = _phone_formats(rng, digits) + (f" ext {extension}" if extension else "")
        return {
            "_digits": digits,
            "_extension": extension,
            "first": first,
            "last": last,
            "email": email,
            "phone": phone,
            "company": company[0],
            "title": rng.choice(TITLES),
            "city": company[2],
        }

    def emit(person: str, record: dict[str, object]) -> None:
        rows.append(
            (
                record["first"],
                record["last"],
                record["email"],
                record["phone"],
                record["company"],
                record["title"],
                record["city"],
            )
        )
        truth.append(person)

    def duplicate(rng: random.Random, record: dict[str, object], private: str | None, mobile: str | None) -> dict:
        out = dict(record)
        first, last = str(out["first"]), str(out["last"])
        roll = rng.random()
        if roll < 0.15:
            first, last = first.upper(), last.upper()
        elif roll < 0.25:
            first, last = first.translate(ASCII), last.translate(ASCII)
        if rng.random() < 0.2:
            first = _typo(rng, first)
        if rng.random() < 0.2:
            last = _typo(rng, last)
        roll = rng.random()
        if roll < 0.07:
            first, last = first[:3], last[:4]  # cut short by a form
        elif roll < 0.15:
            first = first[0] + "."
        out["first"], out["last"] = first, last
        email = out["email"]
        roll = rng.random()
        if email is None:
            pass
        elif roll < 0.12:
            local, _, domain = str(email).partition("@")
            out["email"] = f"{local[:3]}***@{domain}"  # masked by the export
        elif roll < 0.18:
            out["email"] = rng.choice([_phone_formats(rng, mobile or "0701234567")[:8], "55 12 34", "-", "saknas"])
        elif roll < 0.28:
            out["email"] = None
        elif roll < 0.4 and private:
            out["email"] = private
        elif roll < 0.5:
            out["email"] = str(email).upper() if rng.random() < 0.5 else str(email).capitalize()
        roll = rng.random()
        if roll < 0.2:
            out["phone"] = None
        elif roll < 0.7 and out["phone"] is not None:  # the same number written another way
            digits, extension = str(out["_digits"]), out["_extension"]
            out["phone"] = _phone_formats(rng, digits) + (f" ext {extension}" if extension else "")
        elif roll < 0.8 and mobile:  # the mobile where the first record had none or the switchboard
            out["phone"] = _phone_formats(rng, mobile)
        roll = rng.random()
        company = str(out["company"])
        if roll < 0.15:
            out["company"] = _typo(rng, company)
        elif roll < 0.3:
            out["company"] = company.rsplit(" ", 1)[0] if company.endswith(" AB") else company
        elif roll < 0.4:
            out["company"] = None
        if rng.random() < 0.1:
            out["city"] = _typo(rng, str(out["city"]))
        if rng.random() < 0.3:
            out["title"] = rng.choice(TITLES)
        return out

    person = 0
    while person < persons:
        company = rng.choice(companies)
        first = rng.choices(FIRST, weights=names_weight)[0]
        last = rng.choices(LAST, weights=last_weight)[0]
        kind = rng.random()
        domain = company[1]
        if kind < 0.5:
            work = f"{_slug(first)}.{_slug(last)}@{domain}"
        elif kind < 0.7:
            work = f"{_slug(first)[0]}.{_slug(last)}@{domain}"
        elif kind < 0.85:
            work = f"{_slug(first)}@{domain}"  # a small company's first-name mailbox
        else:
            work = f"{_slug(first)}{_slug(last)[0]}@{domain}"
        work = unique(work)
        private = unique(f"{_slug(first)}.{_slug(last)}{rng.randint(1, 99)}@{rng.choice(FREE)}")
        mobile = f"07{rng.choice('02369')}{rng.randint(1_000_000, 9_999_999)}"
        roll = rng.random()
        email = work if rng.random() < 0.8 else private
        if roll < 0.55:
            record = person_record(first, last, company, email=email, digits=mobile)
        elif roll < 0.8:  # the switchboard and an extension
            record = person_record(first, last, company, email=email, digits=company[3], extension=rng.randint(10, 99))
        else:
            record = person_record(first, last, company, email=email)
        pid = str(person)
        emit(pid, record)
        for _ in range(rng.choice([0, 0, 0, 1, 1, 1, 2, 3]) if rng.random() < 0.45 else 0):
            emit(pid, duplicate(rng, record, private, mobile))
        person += 1
        # Hard negatives: new persons built to look like this one.
        roll = rng.random()
        if roll < 0.04 and person < persons:  # a colleague with the same first name at the same company
            other_last = rng.choices(LAST, weights=last_weight)[0]
            colleague = unique(f"{_slug(first)}.{_slug(other_last)}@{domain}")
            emit(str(person), person_record(first, other_last, company, email=colleague, digits=company[3]))
            person += 1
        elif roll < 0.08 and person < persons:  # a family member sharing the home mailbox and phone
            home = unique(f"familjen.{_slug(last)}@{rng.choice(FREE)}")
            home_phone = f"08{rng.randint(1000000, 9999999)}"
            relative = rng.choice([f for f in FIRST if f[0] != first[0]])
            emit(pid, person_record(first, last, company, email=home, digits=home_phone))
            other = rng.choice(companies)
            emit(str(person), person_record(relative, last, other, email=home, digits=home_phone))
            person += 1
        elif roll < 0.12 and person < persons:  # a first-name mailbox of a namesake at another company
            other = rng.choice(companies)
            other_last = rng.choices(LAST, weights=last_weight)[0]
            emit(
                str(person),
                person_record(first, other_last, other, email=unique(f"{_slug(first)}@{other[1]}")),
            )
            person += 1
        elif roll < 0.14 and person < persons:  # namesakes in the same city, with a common name
            common_first, common_last = rng.choice(FIRST[:20]), rng.choice(LAST[:20])
            for variant in ("{}.{}", "{}_{}"):
                if person >= persons:
                    break
                other = rng.choice([c for c in companies if c[2] == company[2]] or companies)
                local = variant.format(_slug(common_first), _slug(common_last))
                address = unique(f"{local}@{rng.choice(FREE)}")
                emit(str(person), person_record(common_first, common_last, other, email=address))
                person += 1
    order = list(range(len(rows)))
    rng.shuffle(order)
    frame = pl.DataFrame([rows[i] for i in order], schema=list(COLUMNS), orient="row")
    return frame.cast(pl.String), [truth[i] for i in order]


def write(persons: int, folder: Path, seed: int = 11) -> tuple[Path, list[str]]:
    """The export as ``folder/crm-<persons>.csv`` and the true person of each of its rows."""
    frame, truth = generate(persons, seed)
    path = folder / f"crm-{persons}.csv"
    frame.write_csv(path)
    return path, truth
