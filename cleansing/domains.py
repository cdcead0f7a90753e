"""Domain check: the mail status of every distinct email domain, looked up once per run.

Statuses follow RFC 5321 §5.1 (implicit MX) and RFC 7505 (null MX): ``deliverable``, ``no_mail``,
``domain_missing``, ``mx_unusable``, ``unknown`` (transient: never discards) and ``not_checked``.
Canary domains tell whether the resolver can be trusted at all; when it cannot, every record's status
is ``unverified`` (what the resolver said is in the manifest, and counts for nothing).

A known slip of a major provider's name (``gmial.com``, ``hotmial.se``, ``outlok.com``) is a typo
wherever it appears, whatever DNS says of it: ``typo_domain`` and the provider's address in
``suggested_email``. Other failing domains get a suggestion only when DNS was healthy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import ipaddress
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import disposable_email_domains
import polars as pl
from rapidfuzz import process
from rapidfuzz.distance import OSA, Levenshtein

from .errors import TransientError
from .flags import with_flags
from .policy import DomainPolicy
from .providers import COMMON_DOMAINS, FREE_MAIL_DOMAINS, MAJOR_PROVIDERS, NOT_TYPOS, ROLE_LOCAL_PARTS
from .reasons import Flag
from .resolver import Lookup, Resolver, gather_limited

DELIVERABLE, NO_MAIL, DOMAIN_MISSING, MX_UNUSABLE, UNKNOWN, NOT_CHECKED, UNVERIFIED = (
    "deliverable",
    "no_mail",
    "domain_missing",
    "mx_unusable",
    "unknown",
    "not_checked",
    "unverified",  # looked up, but DNS was unhealthy: the answer is not trusted
)
PERMANENT_FAILURES = [DOMAIN_MISSING, NO_MAIL, MX_UNUSABLE]
MIN_TTL, MAX_TTL = 3600, 7 * 86400
DEFAULT_CONCURRENCY = 100


@dataclass(frozen=True)
class DomainResult:
    domain: str
    status: str
    detail: str
    ttl: int = MIN_TTL


@dataclass(frozen=True)
class DnsHealth:
    checked: bool
    healthy: bool
    detail: str
    statuses: dict[str, int] = field(default_factory=dict)
    canaries: dict[str, str] = field(default_factory=dict)
    from_cache: int = 0
    looked_up: int = 0


class DomainCache(Protocol):
    def cached_domains(self, domains: Sequence[str], now: dt.datetime) -> dict[str, tuple[str, str]]: ...
    def cache_domains(self, results: Sequence[DomainResult], now: dt.datetime) -> None: ...


def _clamp(ttl: int) -> int:
    return max(MIN_TTL, min(MAX_TTL, ttl))


def _is_global(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class DomainChecker:
    """Looks up domains through a resolver; MX hosts shared by many domains are resolved once."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._hosts: dict[str, asyncio.Task[tuple[str, int]]] = {}

    async def _addresses(self, name: str) -> tuple[list[str], set[str], int]:
        """A and AAAA of a name: (addresses, outcomes, ttl)."""
        a, aaaa = await asyncio.gather(self.resolver.lookup(name, "A"), self.resolver.lookup(name, "AAAA"))
        addresses = [*a.records, *aaaa.records]
        ttls = [x.ttl for x in (a, aaaa) if x.outcome in ("answer", "nodata", "nxdomain")]
        return addresses, {a.outcome, aaaa.outcome}, min(ttls, default=MIN_TTL)

    async def _host(self, host: str) -> tuple[str, int]:
        """An MX host: ``global``, ``unusable`` or ``transient``."""
        addresses, outcomes, ttl = await self._addresses(host)
        if any(_is_global(a) for a in addresses):
            return "global", ttl
        if "transient" in outcomes:
            return "transient", ttl
        return "unusable", ttl

    def _host_once(self, host: str) -> Awaitable[tuple[str, int]]:
        if host not in self._hosts:
            self._hosts[host] = asyncio.ensure_future(self._host(host))
        return self._hosts[host]

    async def check(self, domain: str) -> DomainResult:
        mx = await self.resolver.lookup(domain, "MX")
        if mx.outcome == "transient":
            return DomainResult(domain, UNKNOWN, f"MX lookup failed transiently ({mx.detail})")
        if mx.outcome == "nxdomain":
            return DomainResult(domain, DOMAIN_MISSING, "the domain does not exist (NXDOMAIN)", _clamp(mx.ttl))
        if mx.outcome == "nodata":
            return await self._implicit(domain, mx)
        return await self._explicit(domain, mx)

    async def _implicit(self, domain: str, mx: Lookup) -> DomainResult:
        addresses, outcomes, ttl = await self._addresses(domain)
        ttl = _clamp(min(ttl, mx.ttl))
        if any(_is_global(a) for a in addresses):
            return DomainResult(domain, DELIVERABLE, "no MX; implicit MX on its own address", ttl)
        if "transient" in outcomes:
            return DomainResult(domain, UNKNOWN, "no MX, and the address lookup failed transiently")
        if addresses:
            return DomainResult(domain, NO_MAIL, "no MX, and only non-global addresses", ttl)
        return DomainResult(domain, NO_MAIL, "the domain exists but has no MX, A or AAAA record", ttl)

    async def _explicit(self, domain: str, mx: Lookup) -> DomainResult:
        records = []
        for text in mx.records:
            preference, _, host = text.partition(" ")
            records.append((int(preference), host.lower()))
        real = sorted((p, h) for p, h in records if h != ".")
        if not real:
            return DomainResult(domain, NO_MAIL, "null MX: the domain takes no mail (RFC 7505)", _clamp(mx.ttl))
        warning = "; a null MX stands beside real MX records" if len(real) < len(records) else ""
        verdicts: list[str] = []
        for _, host in real:
            name = host.rstrip(".")
            if name == "localhost" or name.endswith(".localhost") or _is_ip_literal(name):
                verdicts.append("unusable")
                continue
            glue = mx.glue.get(host) or mx.glue.get(host if host.endswith(".") else host + ".")
            if glue and any(_is_global(a) for a in glue):
                verdicts.append("global")
            else:
                verdicts.append((await self._host_once(host))[0])
            if verdicts[-1] == "global":
                return DomainResult(
                    domain, DELIVERABLE, f"MX host resolves to a global address{warning}", _clamp(mx.ttl)
                )
        if "transient" in verdicts:
            return DomainResult(domain, UNKNOWN, "MX host lookups failed transiently")
        return DomainResult(
            domain,
            MX_UNUSABLE,
            "every MX host is missing, localhost, an IP literal or has no global address",
            _clamp(mx.ttl),
        )


def lookup_domains(
    domains: Sequence[str], resolver: Resolver, concurrency: int = DEFAULT_CONCURRENCY
) -> list[DomainResult]:
    """Check every domain with at most ``concurrency`` lookups in flight (in a thread of its own, so
    that it runs whether or not the caller already has an event loop)."""

    async def run() -> list[DomainResult]:
        checker = DomainChecker(resolver)
        results = await gather_limited([checker.check(d) for d in domains], concurrency)
        return [r for r in results if isinstance(r, DomainResult)]

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def disposable(domains: Sequence[str]) -> set[str]:
    """Domains that are, or are under, a disposable mail provider (``x.mailinator.com``)."""
    blocklist = disposable_email_domains.blocklist
    out = set()
    for domain in domains:
        labels = domain.split(".")
        if any(".".join(labels[i:]) in blocklist for i in range(len(labels) - 1)):
            out.add(domain)
    return out


def typo_suggestion(domain: str) -> str | None:
    """The common domain this one is most likely a slip of (``gmial.com`` → ``gmail.com``)."""
    if domain in COMMON_DOMAINS:
        return None
    limit = 1 if len(domain) <= 8 else 2
    match = process.extractOne(domain, COMMON_DOMAINS, scorer=Levenshtein.distance, score_cutoff=limit)
    return match[0] if match else None


def known_typos(domains: Sequence[str]) -> dict[str, str]:
    """Domains one slip (a letter wrong, missing, extra or two swapped) from a major provider's name under
    a suffix the provider uses: ``gmial.com`` → ``gmail.com``, ``hotmial.se`` → ``hotmail.se``. Real
    providers a slip away (``mail.com``, ``ymail.com``, ``email.com``) are not typos."""
    out = {}
    for domain in domains:
        label, _, suffix = domain.partition(".")
        if domain in NOT_TYPOS or not suffix or label in MAJOR_PROVIDERS:
            continue
        match = process.extractOne(label, MAJOR_PROVIDERS, scorer=OSA.distance, score_cutoff=1)
        if match and f"{match[0]}.{suffix}" in COMMON_DOMAINS:
            out[domain] = f"{match[0]}.{suffix}"
    return out


def _with_suggestions(contacts: pl.LazyFrame, suggestions: dict[str, str]) -> pl.LazyFrame:
    """``suggested_email`` (the address at the suggested domain) and the flag TYPO_SUSPECTED."""
    # A lookup by value, not a join: the records' columns stay where they are.
    suggested = pl.col("email_domain").replace_strict(suggestions, default=None, return_dtype=pl.String)
    local = pl.col("email_normalized").str.slice(
        0, pl.col("email_normalized").str.len_chars() - pl.col("email_domain").str.len_chars() - 1
    )
    return contacts.with_columns(
        pl.when(suggested.is_not_null()).then(pl.concat_str([local, pl.lit("@"), suggested])).alias("suggested_email")
    ).with_columns(
        with_flags(pl.col("flags"), (pl.col("suggested_email").is_not_null(), Flag.TYPO_SUSPECTED.value)).alias("flags")
    )


def local_flags(contacts: pl.LazyFrame) -> pl.LazyFrame:
    """ROLE_ACCOUNT and FREE_MAIL, which need no DNS."""
    local = pl.col("email_normalized").str.extract(r"^(.*)@").str.to_lowercase().str.replace(r"\+.*$", "")
    domain = pl.col("email_domain")
    return contacts.with_columns(
        with_flags(
            pl.col("flags"),
            (local.is_in(list(ROLE_LOCAL_PARTS)), Flag.ROLE_ACCOUNT.value),
            (domain.is_in(list(FREE_MAIL_DOMAINS)), Flag.FREE_MAIL.value),
        ).alias("flags")
    )


def health(results: dict[str, str], canaries: dict[str, str], policy: DomainPolicy) -> tuple[bool, str]:
    """DNS is healthy when a canary is deliverable and few enough of the run's domains are unknown."""
    unknown = sum(1 for s in results.values() if s == UNKNOWN)
    share = unknown / len(results) if results else 0.0
    canary_ok = any(s == DELIVERABLE for s in canaries.values())
    if not canary_ok:
        return False, (
            f"DNS is unhealthy: none of the canary domains ({', '.join(canaries) or 'none'}) "
            "resolved as deliverable, so no domain was judged permanently failing"
        )
    if share > policy.max_transient_share:
        return False, (
            f"DNS is unhealthy: {share:.0%} of the run's domains could not be looked up "
            f"(more than {policy.max_transient_share:.0%}), so no domain was judged permanently failing"
        )
    return True, f"DNS is healthy: {len(results)} domains checked, {unknown} unknown"


DOMAIN_TABLE = {
    "email_domain": pl.String,
    "disposable": pl.Boolean,
    "typo_domain": pl.Boolean,
    "mx_status": pl.String,
    "suggested_domain": pl.String,
}


def check_domains(contacts: pl.DataFrame, *args: Any, **options: Any) -> tuple[pl.DataFrame, DnsHealth]:
    """Add ``mx_status``, ``disposable`` and ``suggested_email`` per record, and the domain flags:
    ``judge_domains`` (with ``args`` and ``options``) on the records' distinct domains, then
    ``apply_domains``."""
    table, dns = judge_domains(contacts["email_domain"].drop_nulls().unique().to_list(), *args, **options)
    return apply_domains(contacts, table), dns


def judge_domains(
    domains: Sequence[str],
    policy: DomainPolicy,
    resolver: Resolver | None,
    cache: DomainCache | None = None,
    now: dt.datetime | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Callable[[int], None] | None = None,
    unreachable_raises: bool = False,
) -> tuple[pl.DataFrame, DnsHealth]:
    """The domain check of ``domains`` (in any order), one row per distinct domain (``DOMAIN_TABLE``,
    sorted by domain): whether it is disposable or a known typo, its ``mx_status`` and the domain an
    address there was likely meant for.

    With ``resolver=None`` (``--no-mx``) or ``check_mx = false`` the lookups are skipped and every
    domain is ``not_checked``; disposable domains and known typos need no DNS.

    The canaries are asked first. With ``unreachable_raises``, a resolver that answers none of them at
    all (timeouts, refused connections: not lies) raises ``TransientError`` before any other lookup,
    so that the caller can try again; otherwise the run goes on with DNS judged unhealthy.
    """
    now = now or dt.datetime.now(dt.UTC)
    domains = sorted(set(domains))
    throwaway = disposable(domains)
    typos = known_typos(domains)

    def table(mx_status: dict[str, str], suggestions: dict[str, str]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "email_domain": domains,
                "disposable": [d in throwaway for d in domains],
                "typo_domain": [d in typos for d in domains],
                "mx_status": [mx_status.get(d, NOT_CHECKED) for d in domains],
                "suggested_domain": [suggestions.get(d) for d in domains],
            },
            schema=DOMAIN_TABLE,
        )

    if resolver is None or not policy.check_mx:
        off = DnsHealth(checked=False, healthy=True, detail="the domain check was switched off")
        return table({}, typos), off
    cached = cache.cached_domains(domains, now) if cache else {}
    to_check = [d for d in domains if d not in cached]
    canaries = list(policy.canaries)
    asked = lookup_domains(canaries, resolver, concurrency)
    if unreachable_raises and canaries and all(r.status == UNKNOWN for r in asked):
        raise TransientError(
            f"the DNS resolver answered none of the canary domains ({', '.join(canaries)}): "
            f"{asked[0].detail or 'no answer'}."
        )
    fresh = asked + lookup_domains([d for d in to_check if d not in canaries], resolver, concurrency)
    by_domain = {r.domain: r for r in fresh}
    # What this run was told (the canaries are asked every time) beats what an older run was told.
    statuses = {d: by_domain[d].status if d in by_domain else cached[d][0] for d in domains}
    canary_status = {c: by_domain[c].status for c in canaries}
    healthy, detail = health(statuses, canary_status, policy)
    if cache and healthy:  # an unhealthy run's answers are not knowledge: nothing of it is kept
        cache.cache_domains([r for r in fresh if r.status != UNKNOWN], now)
    cached = {d: v for d, v in cached.items() if d not in by_domain}
    suggestions = dict(typos)
    if healthy:  # a failure an untrusted resolver reports suggests nothing
        for domain, status in statuses.items():
            if status in PERMANENT_FAILURES and domain not in suggestions:
                suggestion = typo_suggestion(domain)
                if suggestion:
                    suggestions[domain] = suggestion
    mx_status = statuses if healthy else dict.fromkeys(statuses, UNVERIFIED)
    return table(mx_status, suggestions), DnsHealth(
        checked=True,
        healthy=healthy,
        detail=detail,
        statuses=dict(Counter(statuses.values())),
        canaries=canary_status,
        from_cache=len(cached),
        looked_up=len(to_check),
    )


# What ``apply_domains`` sets on every record, in the order it adds them (``flags`` stays where it is).
DOMAIN_COLUMNS = ("flags", "disposable", "typo_domain", "mx_status", "suggested_email")


def apply_domains(contacts: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    """Add ``mx_status``, ``disposable`` and ``suggested_email`` per record from the domain ``table``
    (``judge_domains``), and the flags ROLE_ACCOUNT, FREE_MAIL, TYPO_SUSPECTED and MX_UNVERIFIED. Row by
    row: any rows of the records, with a table that holds their domains, get what the whole would get."""
    domain = pl.col("email_domain")

    def by_domain(name: str, default: str | bool) -> pl.Expr:
        # A lookup by value, not a join: the records' columns stay where they are.
        found = domain.replace_strict(
            table["email_domain"], table[name], default=default, return_dtype=DOMAIN_TABLE[name]
        )
        return found.alias(name)

    # Lazily, and collected by the streaming engine, which spreads a single chunk's rows over the cores.
    out = local_flags(contacts.lazy()).with_columns(
        by_domain("disposable", False), by_domain("typo_domain", False), by_domain("mx_status", NOT_CHECKED)
    )
    suggested = table.filter(pl.col("suggested_domain").is_not_null())
    out = _with_suggestions(out, dict(zip(suggested["email_domain"], suggested["suggested_domain"], strict=True)))
    if table["mx_status"].is_in([UNKNOWN, UNVERIFIED]).any():  # some record's domain is unverified
        unverified = pl.col("mx_status").is_in([UNKNOWN, UNVERIFIED])
        out = out.with_columns(
            with_flags(pl.col("flags"), (unverified & domain.is_not_null(), Flag.MX_UNVERIFIED.value)).alias("flags")
        )
    # Only the columns set here are collected, each put in one piece: the streaming engine returns a
    # column in as many pieces as it cut the rows into, and a frame of columns in pieces is copied whole
    # by the next stage's first step.
    added = out.select(DOMAIN_COLUMNS).collect(engine="streaming").rechunk()
    return contacts.with_columns(added.get_columns())
