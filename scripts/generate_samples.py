"""Write the bundled sample exports into data/samples/ (seeded: the same files every time).

    python scripts/generate_samples.py

A Mailchimp audience ZIP (subscribed, unsubscribed, cleaned, nonsubscribed), a HubSpot CSV, a
Salesforce CSV and a Swedish Windows-1252 ``;`` spreadsheet, with people who appear in several of
them, and records made to meet every rule of the decision table (R0–R15). ``data/sample-forget.txt``
lists addresses for ``cleanse forget`` so that R1 (suppressed) can be seen too.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "samples"
REF = dt.datetime(2026, 11, 1, 9, 0, 0)
rng = random.Random(20261129)

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
    "James",
    "Olivia",
    "Noah",
    "Chloe",
    "Liam",
    "Mia",
    "Lena",
    "Stefan",
    "Maja",
    "Viktor",
    "Alva",
    "Hugo",
    "Ebba",
    "Axel",
    "Wilma",
    "Astrid",
    "Elias",
    "Saga",
    "Leo",
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
    "Smith",
    "Brown",
    "Taylor",
    "Wilson",
    "Ek",
    "Lund",
    "Strand",
    "Forsberg",
    "Sandberg",
    "Hedlund",
    "Lindqvist",
    "Engström",
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
    "Blom",
    "Fransson",
    "Nordin",
    "Holmberg",
    "Söderberg",
    "Ström",
    "Isaksson",
    "Magnusson",
    "Lindholm",
    "Hansson",
    "Bengtsson",
    "Jakobsson",
    "Lindgren",
    "Danielsson",
]
FREE = ["gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "telia.com", "live.se", "icloud.com"]
_STEMS = [
    "Nordvik",
    "Fjällbacka",
    "Solberga",
    "Östra",
    "Lindqvist",
    "Acme",
    "Havsbris",
    "Granit",
    "Björkö",
    "Ekdal",
    "Sjövik",
    "Kvarn",
    "Stenhamra",
    "Tallbacka",
    "Fyrtorn",
    "Älvdal",
    "Backa",
    "Ljung",
    "Hagby",
    "Strömsund",
]
_KINDS = ["AB", "Konsult", "Bygg AB", "Data", "Design", "Trä"]
COMPANY = [f"{stem} {kind}" for stem in _STEMS for kind in _KINDS]
COMPANY_DOMAIN = [
    f"{stem.lower().translate(str.maketrans('åäö', 'aao'))}{kind.split()[0].lower()}.se"
    for stem in _STEMS
    for kind in _KINDS
]
CITIES = ["Stockholm", "Göteborg", "Malmö", "Uppsala", "Västerås", "Örebro", "Linköping", "Umeå", "Luleå"]
ASCII = str.maketrans({"å": "a", "ä": "a", "ö": "o", "é": "e", "Å": "a", "Ä": "a", "Ö": "o"})
used_emails: set[str] = set()
used_names: set[tuple[str, str]] = set()


def ago(days_min: int, days_max: int) -> dt.datetime:
    return REF - dt.timedelta(days=rng.randint(days_min, days_max), seconds=rng.randint(0, 86_399))


def months(n: float) -> int:
    return int(n * 30.44)


class Person:
    def __init__(self) -> None:
        while True:  # one person a name: homonyms at one company are a different test
            self.first, self.last = rng.choice(FIRST), rng.choice(LAST)
            if (self.first, self.last) not in used_names:
                used_names.add((self.first, self.last))
                break
        self.company_i = rng.randrange(len(COMPANY))
        self.city = rng.choice(CITIES)
        self.phone = f"07{rng.randint(0, 9)}-{rng.randint(100, 999)} {rng.randint(10, 99)} {rng.randint(10, 99)}"
        while True:
            local = f"{self.first}.{self.last}".lower().translate(ASCII)
            if rng.random() < 0.3:
                local += str(rng.randint(1, 99))
            domain = rng.choice(FREE) if rng.random() < 0.6 else COMPANY_DOMAIN[self.company_i]
            email = f"{local}@{domain}"
            if email not in used_emails:
                used_emails.add(email)
                self.email = email
                break

    @property
    def company(self) -> str:
        return COMPANY[self.company_i]


def ts(value: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return value.strftime(fmt) if value else ""


# ---------------------------------------------------------------- Mailchimp
MC_BASE = [
    "Email Address",
    "First Name",
    "Last Name",
    "Address",
    "Phone Number",
    "Company",
    "MEMBER_RATING",
    "OPTIN_TIME",
    "OPTIN_IP",
    "CONFIRM_TIME",
    "CONFIRM_IP",
    "LATITUDE",
    "LONGITUDE",
    "GMTOFF",
    "DSTOFF",
    "TIMEZONE",
    "CC",
    "REGION",
    "LAST_CHANGED",
    "LEID",
    "EUID",
    "NOTES",
    "TAGS",
]
mc: dict[str, list[list[str]]] = {"subscribed": [], "unsubscribed": [], "cleaned": [], "nonsubscribed": []}
leid = iter(range(100_000_000, 200_000_000, 7))


def mc_row(
    p: Person, optin: dt.datetime | None, confirm: dt.datetime | None, tags: str = "", email: str | None = None
) -> list[str]:
    ip = f"192.0.2.{rng.randint(1, 254)}"
    return [
        p.email if email is None else email,
        p.first,
        p.last,
        "",
        p.phone if rng.random() < 0.4 else "",
        p.company,
        str(rng.randint(1, 5)),
        ts(optin),
        ip if optin else "",
        ts(confirm),
        ip if confirm else "",
        "",
        "",
        "",
        "",
        "Europe/Stockholm",
        "SE",
        "",
        ts(REF - dt.timedelta(days=3)),
        str(next(leid)),
        f"{rng.getrandbits(32):08x}",
        "",
        tags,
    ]


# ---------------------------------------------------------------- HubSpot
HS = [
    "Record ID",
    "First Name",
    "Last Name",
    "Email",
    "Phone Number",
    "Company Name",
    "Lifecycle Stage",
    "Create Date",
    "Last Activity Date",
    "Legal basis for processing contact's data",
    "Unsubscribed from all email",
    "Marketing email confirmation status",
    "Invalid email address",
    "Original Source",
    "Marketing contact status",
]
hs: list[list[str]] = []
hs_id = iter(range(5_000_001, 9_000_000, 13))


def hs_row(
    p: Person,
    *,
    basis: str = "",
    unsub: bool = False,
    confirmation: str = "",
    invalid: bool = False,
    created: dt.datetime | None = None,
    activity: dt.datetime | None = None,
    stage: str = "lead",
    source: str = "Organic search",
    email: str | None = None,
) -> list[str]:
    return [
        str(next(hs_id)),
        p.first,
        p.last,
        p.email if email is None else email,
        p.phone if rng.random() < 0.6 else "",
        p.company,
        stage,
        ts(created or ago(100, 2000), "%Y-%m-%d %H:%M"),
        ts(activity, "%Y-%m-%d %H:%M"),
        basis,
        "true" if unsub else "false",
        confirmation,
        "true" if invalid else "false",
        source,
        rng.choice(["Marketing contact", "Non-marketing contact"]),
    ]


# ---------------------------------------------------------------- Salesforce
SF = [
    "Id",
    "FirstName",
    "LastName",
    "Email",
    "Phone",
    "Company",
    "LeadSource",
    "HasOptedOutOfEmail",
    "CreatedDate",
    "PrivacyConsentStatus",
    "CaptureDate",
    "CaptureSource",
    "DoubleConsentCaptureDate",
    "EffectiveTo",
    "EmailBouncedDate",
    "ShouldForget",
    "LastActivityDate",
]
sf: list[list[str]] = []
sf_n = iter(range(1, 100_000))


def sfts(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000Z") if value else ""


def sf_row(
    p: Person,
    *,
    status: str = "",
    capture: dt.datetime | None = None,
    doi: dt.datetime | None = None,
    source: str = "Web",
    opted_out: bool = False,
    expires: dt.datetime | None = None,
    bounced: dt.datetime | None = None,
    forget: bool = False,
    activity: dt.datetime | None = None,
    email: str | None = None,
) -> list[str]:
    return [
        f"003Q{next(sf_n):011d}",
        p.first,
        p.last,
        p.email if email is None else email,
        p.phone,
        p.company,
        source,
        "true" if opted_out else "false",
        sfts(ago(200, 2500)),
        status,
        sfts(capture),
        "Web form" if capture else "",
        sfts(doi),
        sfts(expires).split("T")[0],
        sfts(bounced),
        "true" if forget else "false",
        sfts(activity).split("T")[0],
    ]


# ---------------------------------------------------------------- Swedish sheet (cp1252, ;)
SV = [
    "Förnamn",
    "Efternamn",
    "E-post",
    "Telefon",
    "Företag",
    "Ort",
    "Samtycke",
    "Samtyckesdatum",
    "Källa",
    "Kund",
    "Senaste köp",
    "Avregistrerad",
]
sv: list[list[str]] = []


def sv_row(
    p: Person,
    *,
    consent: str = "",
    date: str = "",
    source: str = "Mässa",
    customer: bool = False,
    purchase: dt.datetime | None = None,
    unsub: str = "",
    email: str | None = None,
) -> list[str]:
    return [
        p.first,
        p.last,
        p.email if email is None else email,
        p.phone,
        p.company,
        p.city,
        consent,
        date,
        source,
        "ja" if customer else "nej",
        purchase.strftime("%Y-%m-%d") if purchase else "",
        unsub,
    ]


def gmail_variant(email: str) -> str:
    local, domain = email.split("@")
    if domain != "gmail.com":
        return email.upper()
    return local.replace(".", "").capitalize() + "+nyhetsbrev@googlemail.com"


def build() -> list[str]:
    forget: list[str] = []

    def people(n: int) -> list[Person]:
        return [Person() for _ in range(n)]

    # R9 CONSENT_VALID: own signup form with double opt-in, within 24 months.
    for p in people(520):
        optin = ago(10, months(22))
        mc["subscribed"].append(mc_row(p, optin, optin + dt.timedelta(minutes=rng.randint(1, 90))))
        if rng.random() < 0.25:  # the same person in the CRM: a duplicate record of one address
            hs.append(
                hs_row(p, basis="Freely given consent from contact", email=gmail_variant(p.email), activity=ago(5, 200))
            )
    # R10 CONSENT_STALE: dated consent 25–47 months old; some refreshed by engagement (→ valid).
    for p in people(260):
        optin = ago(months(25.5), months(46.5))
        mc["subscribed"].append(mc_row(p, optin, optin + dt.timedelta(minutes=5)))
        if rng.random() < 0.2:
            sf.append(sf_row(p, status="OptIn", capture=optin, activity=ago(10, 300)))
    # R8 CONSENT_EXPIRED: dated consent over 48 months old, or past its end date.
    for p in people(140):
        optin = ago(months(49.5), months(90))
        mc["subscribed"].append(mc_row(p, optin, optin + dt.timedelta(minutes=3)))
    for p in people(40):
        capture = ago(100, 600)
        sf.append(sf_row(p, status="OptIn", capture=capture, doi=capture, expires=ago(5, 90)))
    # R13 CONSENT_UNPROVEN: imported into Mailchimp (no OPTIN_TIME), or HubSpot consent with no date.
    for p in people(220):
        mc["subscribed"].append(mc_row(p, None, ago(300, 1500)))
    for p in people(120):
        hs.append(hs_row(p, basis="Freely given consent from contact", confirmation="Confirmed"))
    # R3 OPTED_OUT, in every tool; R3 then a later re-opt-in (→ valid).
    for p in people(180):
        row = mc_row(p, ago(800, 1500), None) + [ts(ago(30, 700)), "Nyhetsbrev vecka 12", "a1b2c3", "NORMAL", ""]
        mc["unsubscribed"].append(row)
        if rng.random() < 0.3:  # the CRM still says consent: the opt-out must win
            hs.append(hs_row(p, basis="Freely given consent from contact", confirmation="Confirmed"))
    for p in people(60):
        hs.append(hs_row(p, basis="Freely given consent from contact", unsub=True))
    for p in people(50):
        sf.append(sf_row(p, status="OptIn", capture=ago(900, 1500), opted_out=True))
    for p in people(40):
        sv.append(sv_row(p, consent="ja", date=ts(ago(400, 900), "%d.%m.%Y"), unsub="ja"))
    for p in people(30):  # unsubscribed on a date, signed up again through the form since
        sv.append(sv_row(p, consent="ja", date=ts(ago(700, 900), "%Y-%m-%d"), unsub=ts(ago(250, 600), "%Y-%m-%d")))
        optin = ago(10, 200)
        mc["subscribed"].append(mc_row(p, optin, optin + dt.timedelta(minutes=2)))
    # R2 ERASURE_REQUESTED.
    for p in people(35):
        sf.append(sf_row(p, status="OptIn", capture=ago(100, 500), forget=True))
    # R4 HARD_BOUNCE: Mailchimp cleaned, HubSpot invalid, Salesforce bounce date.
    for p in people(110):
        mc["cleaned"].append(mc_row(p, ago(400, 1200), None) + [ts(ago(20, 300)), "Kampanj höst", "c0ffee"])
    for p in people(30):
        hs.append(hs_row(p, basis="Freely given consent from contact", invalid=True))
    for p in people(25):
        sf.append(sf_row(p, status="OptIn", capture=ago(100, 400), bounced=ago(5, 60)))
    # R7 THIRD_PARTY_LIST: bought or rented lists.
    for p in people(70):
        sf.append(sf_row(p, status="OptIn", capture=ago(30, 300), source="Purchased List"))
    for p in people(60):
        mc["subscribed"].append(mc_row(p, None, ago(200, 400), tags='"Köpt lista 2025","Mässa"'))
    for p in people(40):
        sv.append(sv_row(p, consent="ja", date=ts(ago(30, 300), "%Y-%m-%d"), source="Köpt lista"))
    # R11 DOI_PENDING (recent) and DOI_NEVER_CONFIRMED (old).
    for p in people(45):
        sf.append(sf_row(p, status="OptInPending", capture=ago(1, 25)))
    for p in people(35):
        hs.append(hs_row(p, confirmation="Confirmation Pending", created=ago(2, 20)))
    for p in people(60):
        hs.append(hs_row(p, confirmation="Confirmation Email Sent", created=ago(90, 900)))
    # R12 SOFT_OPT_IN: customers with a recent purchase; older purchases fall to R15.
    for p in people(150):
        sv.append(sv_row(p, source="Butik", customer=True, purchase=ago(10, months(22))))
    for p in people(60):
        sv.append(sv_row(p, source="Butik", customer=True, purchase=ago(months(26), months(60))))
    # R14 LEGITIMATE_INTEREST_ONLY.
    for p in people(130):
        hs.append(hs_row(p, basis="Legitimate interest – prospect/lead", source="Offline sources"))
    # R15 NO_CONSENT: transactional contacts, contract only, nothing recorded.
    for p in people(120):
        mc["nonsubscribed"].append(mc_row(p, None, None))
    for p in people(70):
        hs.append(hs_row(p, basis="Performance of a contract", stage="customer"))
    for p in people(60):
        sf.append(sf_row(p, status="NotSeen"))
    # Swedish sheet with dated consent (DD.MM.YYYY), some stale, and a few dates nobody can read.
    for p in people(160):
        sv.append(sv_row(p, consent="ja", date=ts(ago(20, months(40)), "%d.%m.%Y")))
    for p in people(15):
        sv.append(sv_row(p, consent="ja", date=f"{rng.randint(13, 28)}/{rng.randint(1, 12)}/2024"))
    # R0 INVALID_EMAIL: typos and missing addresses.
    for p in people(25):
        broken = p.email.replace("@", rng.choice(["", " @", "@@", "(at)"]), 1)
        sv.append(sv_row(p, consent="ja", date="2025-01-10", email=broken))
    for p in people(15):
        hs.append(hs_row(p, basis="Freely given consent from contact", email=""))
    # Domains for the domain check: a typo of a common provider and a disposable provider.
    for p in people(20):
        local = p.email.split("@")[0]
        optin = ago(10, 300)
        domain = rng.choice(["gmial.com", "hotmial.com", "outlok.com"])
        mc["subscribed"].append(mc_row(p, optin, optin + dt.timedelta(minutes=1), email=f"{local}@{domain}"))
    for p in people(20):
        local = p.email.split("@")[0]
        sf.append(sf_row(p, status="OptIn", capture=ago(10, 300), email=f"{local}@mailinator.com"))
    # R1 SUPPRESSED: people on the suppression list who are still in an export.
    for p in people(25):
        optin = ago(900, 1300)
        mc["subscribed"].append(mc_row(p, optin, optin + dt.timedelta(minutes=1)))
        forget.append(p.email)
    # Role accounts shared by colleagues.
    for i, domain in enumerate(COMPANY_DOMAIN):
        p = Person()
        hs.append(
            hs_row(
                p,
                basis="Legitimate interest – existing customer",
                stage="customer",
                email=f"{['info', 'sales', 'kontakt', 'support'][i % 4]}@{domain}",
            )
        )
    return forget


def write_csv(
    path: Path,
    header: list[str],
    rows: list[list[str]],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    quote_all: bool = False,
    extra_lines: list[str] | None = None,
) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(
        buffer, delimiter=delimiter, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, lineterminator="\r\n"
    )
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue() + "".join(line + "\r\n" for line in extra_lines or [])
    path.write_bytes(text.encode(encoding))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    forget = build()
    for rows in (*mc.values(), hs, sf, sv):
        rng.shuffle(rows)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        extra = {
            "unsubscribed": [
                "UNSUB_TIME",
                "UNSUB_CAMPAIGN_TITLE",
                "UNSUB_CAMPAIGN_ID",
                "UNSUB_REASON",
                "UNSUB_REASON_OTHER",
            ],
            "cleaned": ["CLEAN_TIME", "CLEAN_CAMPAIGN_TITLE", "CLEAN_CAMPAIGN_ID"],
        }
        for status, rows in mc.items():
            buffer = io.StringIO(newline="")
            writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
            writer.writerow(MC_BASE + extra.get(status, []))
            writer.writerows(rows)
            info = zipfile.ZipInfo(f"{status}_email_audience_export_5f3a9c.csv", date_time=(2026, 11, 1, 9, 0, 0))
            zf.writestr(info, buffer.getvalue().encode("utf-8"), zipfile.ZIP_DEFLATED)
    (OUT / "mailchimp_audience_export.zip").write_bytes(archive.getvalue())
    write_csv(OUT / "hubspot_contacts.csv", HS, hs)
    write_csv(OUT / "salesforce_contacts.csv", SF, sf)
    # A Swedish Excel sheet saved as CSV: Windows-1252, semicolons, and two rows nobody can read.
    broken = [
        'Kalle;Ankeborg;"kalle@ankeborg.se;070-111 22 33;Ankeborg AB;Ankeborg;ja;01.02.2025;Mässa;nej;;',
        "Musse;Pigg;musse@example.se;Pigg AB",
    ]
    write_csv(OUT / "kunder_sv.csv", SV, sv, delimiter=";", encoding="cp1252", extra_lines=broken)
    (ROOT / "data" / "sample-forget.txt").write_text("\n".join(forget) + "\n", encoding="utf-8")
    total = sum(len(r) for r in mc.values()) + len(hs) + len(sf) + len(sv) + len(broken)
    print(f"wrote {total} rows into {OUT}")


if __name__ == "__main__":
    main()
