"""One generic contact CSV of N rows, as a spreadsheet export looks: 12 columns, Swedish names, about
30 % of the addresses with non-ASCII local parts (``björn.smith@…``), domains skewed as real lists are
(a few free-mail providers hold most addresses), duplicates in other case, and dirt: ragged rows,
broken quotes, empty lines, invalid addresses, dates in three formats.

    python benchmarks/generate_generic.py 1000000 /tmp/generic.csv
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

FIRST = [
    "anna", "björn", "åsa", "örjan", "märta", "sören", "lars", "karin", "erik", "ingrid", "göran", "linnéa",
    "maja", "oskar", "elsa", "hugo", "saga", "nils", "tova", "måns", "ebba", "olle", "stina", "jöns",
]  # fmt: skip
LAST = [
    "andersson", "johansson", "karlsson", "nilsson", "eriksson", "larsson", "olsson", "persson", "svensson",
    "gustafsson", "pettersson", "jönsson", "söderberg", "åkesson", "lindström", "öberg", "holm", "berg",
]  # fmt: skip
ASCII = str.maketrans("åäöéü", "aaoeu")
FREE = ["gmail.com", "hotmail.com", "outlook.com", "yahoo.com", "live.se", "icloud.com", "telia.com"]
HEADER = "Email,First name,Last name,Phone,Company,Street,Postcode,City,Consent,Consent date,Source,Unsubscribed\n"


def _domain(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return FREE[min(int(rng.paretovariate(1.2)) - 1, len(FREE) - 1)]
    return f"företag{int(rng.paretovariate(0.8)) % 5000}.se".translate(ASCII) if rng.random() < 0.9 else "exämple.se"


def _email(rng: random.Random, first: str, last: str, i: int) -> str:
    local = f"{first}.{last}{i % 997}"
    if rng.random() >= 0.3:
        local = local.translate(ASCII)
    roll = rng.random()
    domain = _domain(rng)
    if roll < 0.93:
        return f"{local}@{domain}"
    if roll < 0.95:
        return f"{local}{domain}"  # no @
    if roll < 0.96:
        return f"{local}..x@{domain}"
    if roll < 0.97:
        return f" {local}@{domain.upper()} "
    if roll < 0.98:
        return f"{local}@{domain.split('.')[0]}"
    return ""


def generate(n: int, out: Path, seed: int = 11) -> Path:
    rng = random.Random(seed)
    recent: list[str] = []
    with out.open("w", encoding="utf-8", newline="") as handle:
        handle.write(HEADER)
        for i in range(n):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            if recent and rng.random() < 0.12:
                email = rng.choice(recent)
                email = email.upper() if rng.random() < 0.5 else email
            else:
                email = _email(rng, first, last, i)
                if len(recent) < 50_000:
                    recent.append(email)
                else:
                    recent[rng.randrange(len(recent))] = email
            year, month, day = rng.randint(2017, 2026), rng.randint(1, 12), rng.randint(1, 28)
            date = rng.choice([f"{year}-{month:02d}-{day:02d}", f"{day:02d}.{month:02d}.{year}", ""])
            phone = (
                ""
                if rng.random() < 0.4
                else f"07{rng.randint(0, 9)}-{rng.randint(100, 999)} {rng.randint(10, 99)} 0{i % 10}"
            )
            fields = [
                email,
                first.capitalize(),
                last.capitalize(),
                phone,
                rng.choice(["Acme AB", "Nordvik AB", "Granit Trä", "", "Björk & Söner"]),
                f"{rng.choice(['Storgatan', 'Kungsvägen', 'Östra Långgatan'])} {rng.randint(1, 120)}",
                f"{rng.randint(100, 999)} {rng.randint(10, 99)}",
                rng.choice(["Stockholm", "Göteborg", "Malmö", "Umeå", "Västerås"]),
                rng.choice(["ja", "yes", "nej", "", "pending"]),
                date,
                rng.choice(["Webbformulär", "Mässa", "Köpt lista", "import", ""]),
                "ja" if rng.random() < 0.04 else "",
            ]
            roll = rng.random()
            if roll < 0.0005:
                handle.write(",".join(fields[:-2]) + "\n")  # ragged row
            elif roll < 0.0007:
                handle.write('"' + ",".join(fields) + "\n")  # a quote opened and never closed
            elif roll < 0.0010:
                handle.write("\n")  # empty line
            else:
                handle.write(",".join(f'"{f}"' if "," in f or '"' in f else f for f in fields) + "\n")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    print(generate(args.n, args.out))
