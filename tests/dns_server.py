"""A small authoritative DNS server on loopback for the tests, with scripted faults.

It answers from zone-file text, chases CNAMEs inside its zone, adds glue for MX hosts it knows, and
can answer SERVFAIL or REFUSED or stay silent for chosen names (and types). It counts every query.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from typing import Literal

from dnslib import QTYPE, RCODE, RR, DNSRecord

Fault = Literal["servfail", "refused", "silent", "nxdomain-all"]
SOA = "zone.se. 300 IN SOA ns.zone.se. admin.zone.se. 1 3600 600 86400 300"


class DnsServer:
    def __init__(self, zone: str, faults: dict[str, Fault] | None = None, lie: bool = False) -> None:
        self.records = RR.fromZone(zone)
        self.soa = RR.fromZone(SOA)[0]
        self.faults = {self._key(k): v for k, v in (faults or {}).items()}
        self.lie = lie
        self.queries: Counter[tuple[str, str]] = Counter()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @staticmethod
    def _key(text: str) -> str:
        """``name`` or ``name/TYPE`` with the name in absolute lowercase form."""
        name, _, rdtype = text.partition("/")
        name = name.lower().rstrip(".") + "."
        return f"{name}/{rdtype.upper()}" if rdtype else name

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def count(self, name: str) -> int:
        """Queries received for a name (any type)."""
        key = name.lower().rstrip(".") + "."
        return sum(n for (q, _), n in self.queries.items() if q == key)

    def _rrs(self, name: str) -> list[RR]:
        return [r for r in self.records if str(r.rname).lower() == name]

    def _answer(self, request: DNSRecord) -> DNSRecord | None:
        qname = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        self.queries[(qname, qtype)] += 1
        reply = request.reply()
        fault = self.faults.get(f"{qname}/{qtype}") or self.faults.get(qname)
        if fault == "silent":
            return None
        if fault in ("servfail", "refused"):
            reply.header.rcode = RCODE.SERVFAIL if fault == "servfail" else RCODE.REFUSED
            return reply
        if self.lie:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self.soa)
            return reply
        name = qname
        for _ in range(8):
            rrs = self._rrs(name)
            cname = [r for r in rrs if r.rtype == QTYPE.CNAME]
            if cname and qtype != "CNAME":
                reply.add_answer(*cname)
                name = str(cname[0].rdata.label).lower()
                continue
            break
        rrs = self._rrs(name)
        matching = [r for r in rrs if QTYPE[r.rtype] == qtype]
        if matching:
            reply.add_answer(*matching)
            if qtype == "MX":
                for mx in matching:
                    host = str(mx.rdata.label).lower()
                    if not host.endswith("." + name):
                        continue  # glue only for hosts under the queried name
                    for glue in self._rrs(host):
                        if glue.rtype in (QTYPE.A, QTYPE.AAAA):
                            reply.add_ar(glue)
        elif rrs or any(str(r.rname).lower().endswith("." + name) for r in self.records):
            reply.add_auth(self.soa)  # NODATA
        else:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self.soa)
        return reply

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                reply = self._answer(DNSRecord.parse(data))
            except Exception:  # a malformed packet: no answer, as a real server might
                continue
            if reply is not None:
                self.sock.sendto(reply.pack(), peer)
