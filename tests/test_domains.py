"""The domain check against a real DNS server on loopback that the tests start."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import idna
import polars as pl
import pytest

from cleansing.domains import disposable, known_typos, lookup_domains, typo_suggestion
from cleansing.pipeline import RunContext, RunRequest, run_pipeline
from cleansing.resolver import DnsResolver, parse_server

from .dns_server import DnsServer

IDN = idna.encode("börse.zone.se").decode()
GLOBAL_V4, GLOBAL_V6 = "93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"
ZONE = f"""
mx.zone.se. 3600 IN MX 10 mail.mx.zone.se.
mail.mx.zone.se. 3600 IN A {GLOBAL_V4}
nullmx.zone.se. 3600 IN MX 0 .
nullmix.zone.se. 3600 IN MX 0 .
nullmix.zone.se. 3600 IN MX 10 mail.mx.zone.se.
aonly.zone.se. 3600 IN A {GLOBAL_V4}
aaaaonly.zone.se. 3600 IN AAAA {GLOBAL_V6}
aprivate.zone.se. 3600 IN A 10.1.2.3
nodata.zone.se. 3600 IN TXT "v=spf1 -all"
cname.zone.se. 3600 IN CNAME mx.zone.se.
mxmissing.zone.se. 3600 IN MX 10 nohost.zone.se.
mxlocalhost.zone.se. 3600 IN MX 10 localhost.
mxprivate.zone.se. 3600 IN MX 10 priv.zone.se.
priv.zone.se. 3600 IN A 192.168.1.10
mxnoglue.zone.se. 3600 IN MX 10 mail.other.se.
mail.other.se. 3600 IN AAAA {GLOBAL_V6}
mxfail.zone.se. 3600 IN A {GLOBAL_V4}
mxhostfail.zone.se. 3600 IN MX 10 broken.zone.se.
short.zone.se. 60 IN MX 10 mail.mx.zone.se.
long.zone.se. 2592000 IN MX 10 mail.mx.zone.se.
{IDN}. 3600 IN MX 10 mail.mx.zone.se.
gmail.com. 3600 IN MX 5 gmail-smtp-in.l.google.com.
gmail-smtp-in.l.google.com. 3600 IN A 142.250.150.26
outlook.com. 3600 IN MX 10 outlook-com.olc.protection.outlook.com.
outlook-com.olc.protection.outlook.com. 3600 IN A 52.101.68.1
mailinator.com. 3600 IN MX 10 mail.mx.zone.se.
yahoo.com. 3600 IN MX 1 mta5.am0.yahoodns.net.
mta5.am0.yahoodns.net. 3600 IN A 67.195.204.72
"""
FAULTS = {
    "servfail.zone.se": "servfail",
    "refused.zone.se": "refused",
    "silent.zone.se": "silent",
    "mxfail.zone.se/MX": "servfail",
    "broken.zone.se": "servfail",
}
FAST = (0.2, 0.4)


@pytest.fixture(scope="module")
def server() -> Iterator[DnsServer]:
    with DnsServer(ZONE, FAULTS) as dns:  # type: ignore[arg-type]
        yield dns


@pytest.mark.parametrize(
    ("domain", "status"),
    [
        pytest.param("mx.zone.se", "deliverable", id="mx-to-global-host"),
        pytest.param("nullmx.zone.se", "no_mail", id="null-mx"),
        pytest.param("nullmix.zone.se", "deliverable", id="null-mx-beside-real-mx"),
        pytest.param("aonly.zone.se", "deliverable", id="implicit-mx-a"),
        pytest.param("aaaaonly.zone.se", "deliverable", id="implicit-mx-aaaa"),
        pytest.param("aprivate.zone.se", "no_mail", id="implicit-mx-private-address"),
        pytest.param("nodata.zone.se", "no_mail", id="nodata"),
        pytest.param("missing.zone.se", "domain_missing", id="nxdomain"),
        pytest.param("cname.zone.se", "deliverable", id="cname-to-mx-domain"),
        pytest.param("mxmissing.zone.se", "mx_unusable", id="mx-to-missing-host"),
        pytest.param("mxlocalhost.zone.se", "mx_unusable", id="mx-to-localhost"),
        pytest.param("mxprivate.zone.se", "mx_unusable", id="mx-to-private-address"),
        pytest.param("mxnoglue.zone.se", "deliverable", id="mx-host-resolved-without-glue"),
        pytest.param(IDN, "deliverable", id="idn-a-label"),
        pytest.param("servfail.zone.se", "unknown", id="servfail"),
        pytest.param("refused.zone.se", "unknown", id="refused"),
        pytest.param("silent.zone.se", "unknown", id="never-answers"),
        pytest.param("mxfail.zone.se", "unknown", id="mx-transient-never-falls-back-to-a"),
        pytest.param("mxhostfail.zone.se", "unknown", id="mx-host-transient"),
    ],
)
def test_domain_status(server: DnsServer, domain: str, status: str) -> None:
    (result,) = lookup_domains([domain], DnsResolver([server.address], lifetimes=FAST))
    assert (result.domain, result.status) == (domain, status), result.detail


def test_transient_failures_are_retried_with_growing_lifetimes(server: DnsServer) -> None:
    before = server.queries[("servfail.zone.se.", "MX")]
    lookup_domains(["servfail.zone.se"], DnsResolver([server.address], lifetimes=(0.2, 0.3, 0.4)))
    assert server.queries[("servfail.zone.se.", "MX")] - before == 3


def test_mx_hosts_shared_by_many_domains_are_resolved_once(server: DnsServer) -> None:
    before = server.count("mail.other.se")
    lookup_domains(["mxnoglue.zone.se"] * 5, DnsResolver([server.address], lifetimes=FAST))
    assert server.count("mail.other.se") - before == 2  # one A and one AAAA query


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("127.0.0.1:5353", ("127.0.0.1", 5353)), ("10.0.0.1", ("10.0.0.1", 53)), ("[::1]:5353", ("::1", 5353))],
)
def test_dns_server_option_takes_host_and_port(text: str, parsed: tuple[str, int]) -> None:
    assert parse_server(text) == parsed


def test_disposable_domains_include_their_subdomains() -> None:
    assert disposable(["mailinator.com", "x.mailinator.com", "gmail.com", "nordvik.se"]) == {
        "mailinator.com",
        "x.mailinator.com",
    }


@pytest.mark.parametrize(
    ("domain", "suggestion"),
    [
        ("gmial.com", "gmail.com"),
        ("hotmal.com", "hotmail.com"),
        ("outlok.se", "outlook.se"),
        ("gmail.com", None),
        ("nordvik.se", None),
        ("acme.se", None),
    ],
)
def test_typo_suggestions_point_at_common_domains(domain: str, suggestion: str | None) -> None:
    assert typo_suggestion(domain) == suggestion


def _run_ctx(tmp_path: Path, server: DnsServer | None, rows: list[str], name: str = "c.csv") -> RunContext:
    """A run over one file of ``rows`` addresses with consent a month old; ``server=None``: no domain check."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / name
    source.write_text("email,consent date\n" + "".join(f"{r},2026-10-01\n" for r in rows))
    return run_pipeline(
        RunRequest(
            sources=(str(source),),
            as_of=dt.date(2026, 11, 29),
            out_dir=str(tmp_path / "out"),
            state=str(tmp_path / "s.sqlite"),
            dns_servers=(server.address,) if server else (),
            check_mx=server is not None,
        )
    )


def _run(tmp_path: Path, server: DnsServer, rows: list[str], name: str = "c.csv") -> pl.DataFrame:
    ctx = _run_ctx(tmp_path, server, rows, name)
    assert ctx.run_dir is not None
    return pl.read_parquet(ctx.run_dir / "decisions.parquet").join(
        pl.concat([pl.read_parquet(ctx.run_dir / f"{k}.parquet") for k in ("keep", "reconfirm", "discard")]).select(
            "source_row", "suggested_email"
        ),
        on="source_row",
    )


# One address of each kind the domain check tells apart, in the test zone.
MIXED = [
    "anna@mx.zone.se",
    "bo@missing.zone.se",
    "cia@nullmx.zone.se",
    "dan@servfail.zone.se",
    "eva@outlok.com",
    "fia@mailinator.com",
    "info@mx.zone.se",
    "gun@gmail.com",
    f"hans@{idna.decode(IDN)}",
]


def test_pipeline_discards_dead_domains_and_never_transient_ones(tmp_path: Path, server: DnsServer) -> None:
    out = _run(tmp_path, server, MIXED)
    rows = {r["source_row"]: r for r in out.iter_rows(named=True)}
    assert [rows[i]["reason"] for i in range(1, 10)] == [
        "CONSENT_VALID",
        "NO_MAIL_DOMAIN",
        "NO_MAIL_DOMAIN",
        "CONSENT_VALID",
        "DOMAIN_TYPO",
        "DISPOSABLE_DOMAIN",
        "CONSENT_VALID",
        "CONSENT_VALID",
        "CONSENT_VALID",
    ]
    assert rows[4]["mx_status"] == "unknown" and "MX_UNVERIFIED" in rows[4]["flags"]
    assert "TYPO_SUSPECTED" in rows[5]["flags"] and rows[5]["suggested_email"] == "eva@outlook.com"
    assert "ROLE_ACCOUNT" in rows[7]["flags"] and "FREE_MAIL" in rows[8]["flags"]
    assert rows[9]["mx_status"] == "deliverable"


def test_second_run_asks_no_questions_about_known_domains(tmp_path: Path, server: DnsServer) -> None:
    # One unknown among eight stays under the unhealthy share (0.2): a healthy run, whose answers are kept.
    known = ["e@gmail.com", "f@outlook.com", "g@yahoo.com", "h@aonly.zone.se"]
    addresses = ["a@mx.zone.se", "b@missing.zone.se", "c@nodata.zone.se", "d@refused.zone.se", *known]
    _run(tmp_path, server, addresses)
    before = {d: server.count(d) for d in ("mx.zone.se", "missing.zone.se", "nodata.zone.se", "refused.zone.se")}
    _run(tmp_path, server, addresses)
    after = {d: server.count(d) for d in before}
    assert after["mx.zone.se"] == before["mx.zone.se"]
    assert after["missing.zone.se"] == before["missing.zone.se"]
    assert after["nodata.zone.se"] == before["nodata.zone.se"]
    assert after["refused.zone.se"] > before["refused.zone.se"]  # unknown is never cached


def test_cached_results_live_for_their_ttl_clamped_to_an_hour_and_a_week(tmp_path: Path, server: DnsServer) -> None:
    _run(tmp_path, server, ["a@short.zone.se", "b@long.zone.se"])
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        rows = dict(db.execute("SELECT domain, julianday(expires_at) - julianday(checked_at) FROM domain_cache"))
    assert rows["short.zone.se"] == pytest.approx(1 / 24, abs=1e-6)
    assert rows["long.zone.se"] == pytest.approx(7, abs=1e-6)
    assert "refused.zone.se" not in rows


def test_a_resolver_that_lies_nxdomain_discards_nobody_and_says_dns_is_unhealthy(tmp_path: Path) -> None:
    import json

    with DnsServer(ZONE, lie=True) as liar:
        source = tmp_path / "c.csv"
        source.write_text("email,consent date\nanna@mx.zone.se,2026-10-01\nbo@missing.zone.se,2026-10-01\n")
        ctx = run_pipeline(
            RunRequest(
                sources=(str(source),),
                as_of=dt.date(2026, 11, 29),
                out_dir=str(tmp_path / "out"),
                state=str(tmp_path / "s.sqlite"),
                dns_servers=(liar.address,),
            )
        )
    assert ctx.contacts["reason"].to_list() == ["CONSENT_VALID", "CONSENT_VALID"]
    assert all("MX_UNVERIFIED" in f for f in ctx.contacts["flags"].to_list())
    manifest = json.loads((ctx.run_dir / "manifest.json").read_text())  # type: ignore[operator]
    assert manifest["dns"]["healthy"] is False and "unhealthy" in manifest["dns"]["detail"]
    assert set(ctx.contacts["mx_status"]) == {"unverified"}  # what the liar said is no status of a record
    page = (ctx.run_dir / "report.html").read_text()  # type: ignore[operator]
    assert "unhealthy" in page and "answers were not trusted" in page and "records by domain status" not in page
    report = json.loads((ctx.run_dir / "report.json").read_text())  # type: ignore[operator]
    assert report["domains"]["check"] == "untrusted" and report["domains"]["records_by_status"] == {"unverified": 2}
    assert report["domains"]["top_discarded_domains"] == [] and report["domains"]["typo_suggestions"] == []


@pytest.mark.parametrize(
    ("domain", "provider"),
    [
        ("gmial.com", "gmail.com"),
        ("gmaill.com", "gmail.com"),
        ("hotmial.com", "hotmail.com"),
        ("hotmial.se", "hotmail.se"),
        ("outlok.com", "outlook.com"),
        ("yahooo.com", "yahoo.com"),
        # real providers and regional domains a slip away are not typos
        ("mail.com", None),
        ("ymail.com", None),
        ("email.com", None),
        ("hotmail.de", None),
        ("outlook.fr", None),
        ("yopmail.com", None),
        ("aon.com", None),
        ("gmail.com", None),
    ],
)
def test_known_typos_are_slips_of_a_major_providers_name(domain: str, provider: str | None) -> None:
    assert known_typos([domain]).get(domain) == provider


def test_a_known_typo_is_discarded_as_a_typo_with_its_suggestion_even_with_the_check_off(tmp_path: Path) -> None:
    import json

    ctx = _run_ctx(tmp_path, None, ["eva@outlok.com", "bo@gmial.com", "anna@gmail.com"])
    rows = ctx.contacts.sort("_row")
    assert rows["reason"].to_list() == ["DOMAIN_TYPO", "DOMAIN_TYPO", "CONSENT_VALID"]
    assert rows["suggested_email"].to_list() == ["eva@outlook.com", "bo@gmail.com", None]
    assert set(rows["mx_status"]) == {"not_checked"}
    report = json.loads((ctx.run_dir / "report.json").read_text())  # type: ignore[operator]
    domains = report["domains"]
    assert domains["check"] == "off" and domains["typo_records"] == 2
    assert {t["domain"]: (t["suggested"], t["discard"]) for t in domains["typo_suggestions"]} == {
        "outlok.com": ("outlook.com", 1),
        "gmial.com": ("gmail.com", 1),
    }
    # only the domains discarded for their domain, never the biggest providers of other discards
    assert {t["domain"] for t in domains["top_discarded_domains"]} == {"outlok.com", "gmial.com"}
    page = (ctx.run_dir / "report.html").read_text()  # type: ignore[operator]
    assert "did not run" in page and "records by domain status" not in page


TYPO_DOMAINS = {"gmial.com", "hotmial.com", "outlok.com"}  # made to fail by scripts/generate_samples.py


def sample_domains() -> list[str]:
    """Every domain the bundled sample's valid addresses use, but the typos it holds on purpose."""
    from cleansing.mapping import map_tables
    from cleansing.read import read_sources
    from cleansing.validate import normalize_emails

    from .conftest import SAMPLES

    contacts, _ = map_tables(read_sources([SAMPLES]).tables)
    domains = normalize_emails(contacts["email"])["email_domain"].drop_nulls().unique().to_list()
    return sorted(set(domains) - TYPO_DOMAINS)


def test_sample_against_a_healthy_resolver_reaches_every_rule_but_double_opt_in(tmp_path: Path) -> None:
    from cleansing.forget import forget
    from cleansing.reasons import Reason

    from .conftest import ROOT

    *live, dead = sample_domains()  # one domain that takes no mail (null MX) reaches R5's NO_MAIL_DOMAIN
    zone = "\n".join(f"{d}. 3600 IN MX 10 mx.{d}.\nmx.{d}. 3600 IN A {GLOBAL_V4}" for d in live)
    zone += f"\n{dead}. 3600 IN MX 0 ."
    forget((ROOT / "data" / "sample-forget.txt").read_text().split(), tmp_path / "s.sqlite")
    with DnsServer(zone) as dns:
        ctx = run_pipeline(
            RunRequest(
                as_of=dt.date(2026, 11, 2),
                out_dir=str(tmp_path / "out"),
                state=str(tmp_path / "s.sqlite"),
                dns_servers=(dns.address,),
            )
        )
    assert ctx.dns.healthy
    reasons = set(ctx.contacts["reason"].to_list()) | {"UNREADABLE_ROW"}
    assert {r.value for r in Reason} - reasons == {"NEEDS_DOUBLE_OPT_IN", "RECONFIRM_PENDING", "RECONFIRM_UNANSWERED"}
    typos = ctx.contacts.filter(pl.col("flags").list.contains("TYPO_SUSPECTED"))
    assert typos.height > 0 and set(typos["reason"]) <= {"DOMAIN_TYPO", "NO_MAIL_DOMAIN", "DISPOSABLE_DOMAIN"}


def test_an_unhealthy_run_does_not_poison_the_cache_of_the_next_healthy_run(tmp_path: Path, server: DnsServer) -> None:
    """A resolver that answers NXDOMAIN for everything, then a healthy one within the hour, on one state:
    the second run decides exactly as a healthy run on a fresh state."""
    addresses = ["anna@mx.zone.se", "bo@missing.zone.se", "cia@gmail.com", "dan@nullmx.zone.se"]

    def reasons(ctx: object) -> list[str]:
        return ctx.contacts.sort("_row")["reason"].to_list()  # type: ignore[attr-defined, no-any-return]

    shared = tmp_path / "shared"
    with DnsServer(ZONE, lie=True) as liar:
        first = _run_ctx(shared, liar, addresses)
    assert first.dns.healthy is False
    second = _run_ctx(shared, server, addresses)
    fresh = _run_ctx(tmp_path / "fresh", server, addresses)
    assert second.dns.healthy and reasons(second) == reasons(fresh)
    assert reasons(fresh) == ["CONSENT_VALID", "NO_MAIL_DOMAIN", "CONSENT_VALID", "NO_MAIL_DOMAIN"]
    with sqlite3.connect(shared / "s.sqlite") as db:
        learned = dict(db.execute("SELECT domain, status FROM domain_cache"))
    assert learned["gmail.com"] == "deliverable" and learned["mx.zone.se"] == "deliverable"


def test_a_canary_answered_deliverable_now_is_never_taken_from_an_older_negative_entry(
    tmp_path: Path, server: DnsServer
) -> None:
    state = tmp_path / "s.sqlite"
    _run_ctx(tmp_path, server, ["anna@mx.zone.se"])
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    with sqlite3.connect(state) as db:
        db.execute(
            "INSERT OR REPLACE INTO domain_cache VALUES ('gmail.com', 'domain_missing', 'stale', ?, ?, 1)",
            (dt.datetime.now(dt.UTC).isoformat(), later.isoformat()),
        )
    ctx = _run_ctx(tmp_path, server, ["cia@gmail.com"])
    assert ctx.contacts["reason"].to_list() == ["CONSENT_VALID"]


def _validated(emails: list[str | None]) -> pl.DataFrame:
    from cleansing.mapping import map_table
    from cleansing.read import parse_delimited
    from cleansing.validate import validate

    text = "email,consent date\n" + "".join(f"{e or ''},2026-10-01\n" for e in emails)
    mapped, _ = map_table(parse_delimited("c.csv", text)[0], require_email=False)
    return validate(mapped.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64)), "SE")


@pytest.mark.parametrize("pieces", [1, 2, 5])
def test_the_domain_table_applied_to_any_slices_of_the_records_gives_each_row_what_the_whole_gets(
    server: DnsServer, pieces: int
) -> None:
    from cleansing.domains import apply_domains, check_domains, judge_domains
    from cleansing.policy import Policy

    emails: list[str | None] = [*MIXED, "ivo@gmial.com", None, "not an address"] * 3
    records = _validated(emails)
    policy = Policy().domains
    resolver = DnsResolver((server.address,), lifetimes=FAST)
    whole, _ = check_domains(records, policy, resolver)
    assert set(whole["mx_status"]) >= {"deliverable", "domain_missing", "unknown", "not_checked"}
    assert whole["suggested_email"].drop_nulls().to_list()  # typo suggestions are carried too
    table, health = judge_domains(records["email_domain"].drop_nulls().to_list(), policy, resolver)
    assert health.checked and health.healthy
    size = -(-records.height // pieces)
    sliced = pl.concat([apply_domains(records.slice(start, size), table) for start in range(0, records.height, size)])
    assert sliced.equals(whole)
