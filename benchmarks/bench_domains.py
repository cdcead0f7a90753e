"""Throughput of the domain stage against NSD, a real authoritative server, on loopback.

    python benchmarks/bench_domains.py [N_DOMAINS]      # default 50,000

Starts NSD (Debian package ``nsd``; installed with apt-get when missing) with ``rrl-ratelimit: 0`` on
127.0.0.1:5399 serving a generated zone, then times the whole domain stage (lookups,
classification, cache writes) cold, the warm-cache rerun, and domains/s through a proxy that adds
50 ms to every answer at concurrency 10, 50, 100 and 200. Targets: cold ≤ 60 s for 50,000
domains (≥ 1,000 domains/s), warm ≤ 5 s, and throughput that grows with concurrency.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import polars as pl

# After the installed packages: an installed (not editable) cleansing is the one measured.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from cleansing.domains import check_domains, lookup_domains  # noqa: E402
from cleansing.policy import DomainPolicy  # noqa: E402
from cleansing.resolver import DnsResolver  # noqa: E402
from cleansing.state import StateStore  # noqa: E402

PORT, PROXY_PORT = 5399, 5398
ZONE = "bench.se"
GLOBAL = "93.184.216.{}"


def ensure_nsd() -> str:
    if shutil.which("nsd") is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "nsd"],
            check=True,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
    subprocess.run(["pkill", "-f", "nsd -c /tmp"], check=False)  # a server a packaged service left running
    found = shutil.which("nsd") or "/usr/sbin/nsd"
    return found


def make_zone(n: int, folder: Path) -> tuple[list[str], Counter[str]]:
    """N domains under bench.se: most with MX to shared or own hosts, some null MX, A-only, NODATA,
    MX to private hosts, and some that do not exist at all."""
    rng = random.Random(11)
    lines = [
        f"$ORIGIN {ZONE}.",
        "$TTL 3600",
        f"@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 300",
        f"@ IN NS ns.{ZONE}.",
        "ns IN A 127.0.0.1",
    ]
    for i in range(20):
        lines.append(f"mx{i} IN A {GLOBAL.format(i + 1)}")
    lines.append("private-mx IN A 10.0.0.25")
    domains, expected = [], Counter()
    for i in range(n):
        name = f"d{i:06d}"
        roll = rng.random()
        if roll < 0.60:
            lines.append(f"{name} IN MX 10 mx{i % 20}.{ZONE}.")
            expected["deliverable"] += 1
        elif roll < 0.75:
            lines += [f"{name} IN MX 10 mail.{name}", f"mail.{name} IN A {GLOBAL.format(100 + i % 100)}"]
            expected["deliverable"] += 1
        elif roll < 0.80:
            lines.append(f"{name} IN MX 0 .")
            expected["no_mail"] += 1
        elif roll < 0.85:
            lines.append(f"{name} IN A {GLOBAL.format(200 + i % 50)}")
            expected["deliverable"] += 1
        elif roll < 0.88:
            lines.append(f'{name} IN TXT "v=spf1 -all"')
            expected["no_mail"] += 1
        elif roll < 0.90:
            lines.append(f"{name} IN MX 10 private-mx.{ZONE}.")
            expected["mx_unusable"] += 1
        else:
            expected["domain_missing"] += 1
        domains.append(f"{name}.{ZONE}")
    (folder / "bench.zone").write_text("\n".join(lines) + "\n")
    return domains, expected


def start_nsd(folder: Path) -> subprocess.Popen[bytes]:
    conf = folder / "nsd.conf"
    conf.write_text(f"""server:
    ip-address: 127.0.0.1
    port: {PORT}
    username: ""
    zonesdir: "{folder}"
    database: ""
    pidfile: "{folder}/nsd.pid"
    xfrdfile: "{folder}/xfrd.state"
    zonelistfile: "{folder}/zone.list"
    logfile: "{folder}/nsd.log"
    server-count: 1
    rrl-ratelimit: 0
    verbosity: 0
remote-control:
    control-enable: no
zone:
    name: {ZONE}
    zonefile: bench.zone
""")
    process = subprocess.Popen([ensure_nsd(), "-d", "-c", str(conf)])
    deadline = time.time() + 30
    while time.time() < deadline:
        if (
            lookup_domains([f"d000000.{ZONE}"], DnsResolver([f"127.0.0.1:{PORT}"], lifetimes=(0.5,)))[0].status
            != "unknown"
        ):
            return process
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"NSD did not answer; see {folder}/nsd.log")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def contacts(domains: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "email_normalized": [f"user{i}@{d}" for i, d in enumerate(domains)],
            "email_domain": domains,
            "flags": [[] for _ in domains],
        },
        schema={"email_normalized": pl.String, "email_domain": pl.String, "flags": pl.List(pl.String)},
    )


def free_port_check(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SystemExit(f"port {port} on 127.0.0.1 is taken: {exc}") from exc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=50_000)
    parser.add_argument("--latency-domains", type=int, default=2_000)
    args = parser.parse_args()
    free_port_check(PORT)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        domains, expected = make_zone(args.n, folder)
        nsd = start_nsd(folder)
        try:
            policy = DomainPolicy(canaries=(f"d000000.{ZONE}", f"d000001.{ZONE}", f"d000002.{ZONE}"))
            store = StateStore(folder / "state.sqlite")
            frame = contacts(domains)
            resolver = DnsResolver([f"127.0.0.1:{PORT}"])
            started = time.perf_counter()
            out, health = check_domains(frame, policy, resolver, store, now=dt.datetime.now(dt.UTC))
            cold = time.perf_counter() - started
            got = Counter(dict(out.group_by("mx_status").len().iter_rows()))
            print(
                f"cold: {args.n:,} domains in {cold:.1f} s ({args.n / cold:,.0f} domains/s), "
                f"{resolver.queries:,} queries, peak RSS {peak_rss_mb():.0f} MB; healthy={health.healthy}"
            )
            print(f"  statuses {dict(got)}; expected {dict(expected)}; match={got == expected}")
            resolver = DnsResolver([f"127.0.0.1:{PORT}"])
            started = time.perf_counter()
            check_domains(frame, policy, resolver, store, now=dt.datetime.now(dt.UTC))
            warm = time.perf_counter() - started
            print(
                f"warm cache: {args.n:,} domains in {warm:.2f} s, {resolver.queries} queries (the 3 canaries "
                "are always asked afresh)"
            )
            proxy = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).with_name("delay_proxy.py")),
                    str(PROXY_PORT),
                    str(PORT),
                    "50",
                    "600",
                ]
            )
            time.sleep(1.0)
            try:
                sample = domains[: args.latency_domains]
                for concurrency in (10, 50, 100, 200):
                    resolver = DnsResolver([f"127.0.0.1:{PROXY_PORT}"])
                    started = time.perf_counter()
                    results = lookup_domains(sample, resolver, concurrency=concurrency)
                    wall = time.perf_counter() - started
                    unknown = sum(1 for r in results if r.status == "unknown")
                    print(
                        f"50 ms per answer, concurrency {concurrency:>3}: {len(sample) / wall:,.0f} domains/s "
                        f"({wall:.1f} s, {unknown} unknown)"
                    )
            finally:
                proxy.kill()
        finally:
            nsd.terminate()
            nsd.wait(timeout=10)


if __name__ == "__main__":
    main()
