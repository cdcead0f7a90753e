"""The DNS edge: a ``Resolver`` protocol and its dnspython implementation.

A lookup never raises for DNS outcomes: it says ``answer``, ``nxdomain``, ``nodata`` or
``transient`` (SERVFAIL, REFUSED, timeout, no network), so that the domain check can tell a
permanent failure from one that must never discard anybody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

Outcome = Literal["answer", "nxdomain", "nodata", "transient"]
DEFAULT_LIFETIMES = (2.0, 5.0)
NEGATIVE_TTL = 3600


@dataclass(frozen=True)
class Lookup:
    """What one query found. ``records`` are text forms (``10 mail.example.se.``, ``192.0.2.1``);
    ``glue`` maps host names from the additional section to their addresses."""

    outcome: Outcome
    records: tuple[str, ...] = ()
    ttl: int = NEGATIVE_TTL
    glue: dict[str, tuple[str, ...]] = field(default_factory=dict)
    detail: str = ""


class Resolver(Protocol):
    async def lookup(self, name: str, rdtype: str) -> Lookup: ...


def parse_server(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:port`` for IPv6) to ``(host, port)``."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 53


def _negative_ttl(response: dns.message.Message | None) -> int:
    if response is None:
        return NEGATIVE_TTL
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(min(rrset.ttl, rrset[0].minimum))
    return NEGATIVE_TTL


class DnsResolver:
    """dnspython's asyncio resolver, retried with growing lifetimes on transient failures."""

    def __init__(self, servers: Sequence[str] = (), lifetimes: Sequence[float] = DEFAULT_LIFETIMES) -> None:
        if servers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            parsed = [parse_server(s) for s in servers]
            self._resolver.nameservers = [h for h, _ in parsed]
            self._resolver.nameserver_ports = {h: p for h, p in parsed}
        else:
            try:
                self._resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                self._resolver = dns.asyncresolver.Resolver(configure=False)
                self._resolver.nameservers = []
        self._resolver.cache = None
        self.lifetimes = tuple(lifetimes)
        self.queries = 0

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        detail = ""
        for lifetime in self.lifetimes:
            self.queries += 1
            try:
                answer = await self._resolver.resolve(
                    name, rdtype, lifetime=lifetime, raise_on_no_answer=False, search=False
                )
            except dns.resolver.NXDOMAIN as exc:
                responses = exc.kwargs.get("responses") or {}
                return Lookup("nxdomain", ttl=_negative_ttl(next(iter(responses.values()), None)))
            except (
                dns.resolver.NoNameservers,
                dns.exception.Timeout,
                dns.resolver.NoResolverConfiguration,
                OSError,
            ) as exc:
                detail = f"{type(exc).__name__}"
                continue
            except dns.exception.DNSException as exc:
                detail = f"{type(exc).__name__}"
                continue
            if answer.rrset is None:
                return Lookup("nodata", ttl=_negative_ttl(answer.response))
            glue: dict[str, list[str]] = {}
            for rrset in answer.response.additional:
                if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    glue.setdefault(rrset.name.to_text().lower(), []).extend(r.to_text() for r in rrset)
            return Lookup(
                "answer",
                tuple(r.to_text() for r in answer.rrset),
                int(answer.rrset.ttl),
                {k: tuple(v) for k, v in glue.items()},
            )
        return Lookup("transient", detail=detail or "no answer")


async def gather_limited(coroutines: Sequence[object], limit: int) -> list[object]:
    """Run coroutines with at most ``limit`` in flight."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coroutine: object) -> object:
        async with semaphore:
            return await coroutine  # type: ignore[misc]

    return await asyncio.gather(*(one(c) for c in coroutines))
