"""Generate N realistic contacts across several export files (for the benchmarks).

The mix: about 80 % valid addresses (the rest broken in the ways exports break them, plus some
international addresses that take email-validator's slow path), 15 % of rows repeating an earlier
address in another case or another file, consent evidence of every kind, phones in Swedish formats.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

FIRST = [
    "anna",
    "erik",
    "asa",
    "lars",
    "maria",
    "johan",
    "karin",
    "per",
    "eva",
    "bjorn",
    "sofia",
    "mikael",
    "ingrid",
    "olof",
    "linnea",
    "goran",
    "emma",
    "oskar",
    "sara",
    "nils",
    "James",
    "Olivia",
    "Noah",
    "Chloe",
]
LAST = [
    "andersson",
    "johansson",
    "karlsson",
    "nilsson",
    "eriksson",
    "larsson",
    "olsson",
    "persson",
    "svensson",
    "gustafsson",
    "pettersson",
    "jonsson",
    "oberg",
    "lindstrom",
    "akesson",
    "Smith",
    "Brown",
    "Taylor",
]
DOMAINS = [
    "gmail.com",
    "outlook.com",
    "hotmail.com",
    "yahoo.com",
    "telia.com",
    "live.se",
    "icloud.com",
    "Nordvik.SE",
    "acmenordic.com",
    "granitdata.se",
    "bredband.net",
    "comhem.se",
]


def _email(rng: random.Random, n: int) -> str:
    local = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{n}"
    domain = rng.choice(DOMAINS)
    roll = rng.random()
    if roll < 0.80:
        return f"{local}@{domain}"
    if roll < 0.83:
        return f"{local}@{domain}".replace("@", "")  # missing @
    if roll < 0.86:
        return f"{local}..x@{domain}"
    if roll < 0.89:
        return f"{local} @{domain}"
    if roll < 0.91:
        return f"{local}@{domain.split('.')[0]}"  # no top-level domain
    if roll < 0.93:
        return f"{local}@exämple-{n % 50}.se"  # IDN domain
    if roll < 0.95:
        return f"åsa.{local}@{domain}"  # internationalised local part
    if roll < 0.97:
        return f'"{local}"@{domain}'
    return ""


def generate(n: int, out: Path, seed: int = 7) -> list[Path]:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    seen: list[str] = []
    files = {
        "crm_contacts.csv": (
            ",",
            [
                "Email",
                "First name",
                "Last name",
                "Phone",
                "Company",
                "Consent",
                "Consent date",
                "Source",
                "Unsubscribed",
                "Last activity",
            ],
        ),
        "kunder_sv.csv": (
            ";",
            [
                "E-post",
                "Förnamn",
                "Efternamn",
                "Telefon",
                "Företag",
                "Samtycke",
                "Samtyckesdatum",
                "Källa",
                "Avregistrerad",
                "Kund",
                "Senaste köp",
            ],
        ),
        "newsletter.csv": (",", ["email", "name", "subscribed", "subscribed at", "confirmed at", "lead source"]),
    }
    handles = {name: (out / name).open("w", newline="", encoding="utf-8") for name in files}
    writers = {name: csv.writer(handles[name], delimiter=d) for name, (d, _) in files.items()}
    for name, (_, header) in files.items():
        writers[name].writerow(header)
    names = list(files)
    for i in range(n):
        if seen and rng.random() < 0.15:
            email = rng.choice(seen)
            email = email.upper() if rng.random() < 0.5 else email
        else:
            email = _email(rng, i)
            seen.append(email)
        first, last = rng.choice(FIRST).capitalize(), rng.choice(LAST).capitalize()
        phone = (
            ""
            if rng.random() < 0.5
            else f"07{rng.randint(0, 9)}-{rng.randint(100, 999)} {rng.randint(10, 99)} {rng.randint(10, 99)}"
        )
        date = f"20{rng.randint(18, 26)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        status = rng.choice(["yes", "yes", "yes", "no", "pending", "unsubscribed", ""])
        source = rng.choice(["web form", "event", "purchased list", "import", ""])
        target = names[i % 3]
        if target == "crm_contacts.csv":
            row = [
                email,
                first,
                last,
                phone,
                "Acme AB",
                status,
                date if rng.random() < 0.7 else "",
                source,
                "yes" if rng.random() < 0.05 else "",
                date,
            ]
        elif target == "kunder_sv.csv":
            row = [
                email,
                first,
                last,
                phone,
                "Nordvik AB",
                "ja" if status == "yes" else "",
                f"{date[8:10]}.{date[5:7]}.{date[0:4]}",
                source,
                "",
                "ja" if rng.random() < 0.3 else "nej",
                date,
            ]
        else:
            row = [email, f"{first} {last}", status, date, date if rng.random() < 0.4 else "", source]
        writers[target].writerow(row)
    for handle in handles.values():
        handle.close()
    return [out / name for name in names]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", type=int)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    print("\n".join(str(p) for p in generate(args.n, args.out)))
