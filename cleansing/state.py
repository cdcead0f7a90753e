"""The state database: suppression list (keyed hashes) and run history, in one SQLite file.

WAL mode and short transactions make two runs at once safe. The HMAC key comes from
``CLEANSE_HMAC_KEY`` or, failing that, from a key file generated once beside the database with
owner-only permissions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from .domains import DomainResult
from .errors import ConfigError

DEFAULT_STATE = Path("data/state/cleansing.sqlite")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS suppression (
    address_hash TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    added_at TEXT NOT NULL,
    origin TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS domain_cache (
    domain TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    checked_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    learned_healthy INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    published_at TEXT NOT NULL,
    as_of TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    summary TEXT NOT NULL
);
"""


def hash_keys(keys: pl.Series, key: bytes) -> pl.Series:
    """HMAC-SHA256 (hex) of each address key, computed once per distinct key."""
    unique = keys.drop_nulls().unique().to_list()
    digests = {k: hmac.new(key, k.encode("utf-8"), hashlib.sha256).hexdigest() for k in unique}
    return keys.replace_strict(digests, default=None, return_dtype=pl.String)


class StateStore:
    """The one place that touches the state database."""

    def __init__(self, path: str | Path = DEFAULT_STATE) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with self._connect() as db:
                db.executescript(_SCHEMA)
                columns = {row[1] for row in db.execute("PRAGMA table_info(domain_cache)")}
                if "learned_healthy" not in columns:  # a database from before the column: trust none of it
                    db.execute("ALTER TABLE domain_cache ADD COLUMN learned_healthy INTEGER NOT NULL DEFAULT 0")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"the state database cannot be opened ({exc}).",
                path=self.path,
                fix="Pass a writable file with --state.",
            ) from exc
        if self.path.exists():
            os.chmod(self.path, 0o600)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            with db:
                yield db
        finally:
            db.close()

    def hmac_key(self) -> bytes:
        """The key for suppression hashes; generated once into the state folder when not given."""
        from_env = os.environ.get("CLEANSE_HMAC_KEY")
        if from_env:
            return from_env.encode("utf-8")
        key_file = self.path.parent / "hmac.key"
        if not key_file.exists():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return key_file.read_text().strip().encode("utf-8")

    def suppression(self) -> pl.DataFrame:
        with self._connect() as db:
            rows = db.execute("SELECT address_hash, added_at FROM suppression").fetchall()
        frame = pl.DataFrame(rows, schema={"address_hash": pl.String, "suppressed_at": pl.String}, orient="row")
        return frame.with_columns(pl.col("suppressed_at").str.to_datetime(time_zone="UTC", time_unit="us"))

    def suppress(self, hashes: Sequence[str], reason: str, origin: str, when: dt.datetime | None = None) -> int:
        """Add hashes to the suppression list; an existing entry keeps its first date. Returns how many were new."""
        stamp = (when or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        with self._connect() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO suppression (address_hash, reason, added_at, origin) VALUES (?, ?, ?, ?)",
                [(h, reason, stamp, origin) for h in hashes],
            )
            return db.total_changes - before

    def cached_domains(self, domains: Sequence[str], now: dt.datetime) -> dict[str, tuple[str, str]]:
        """Cached statuses that have not expired and were learned in a healthy run: domain → (status, detail)."""
        stamp = now.isoformat()
        out: dict[str, tuple[str, str]] = {}
        with self._connect() as db:
            db.execute("CREATE TEMP TABLE wanted (domain TEXT PRIMARY KEY)")
            db.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", [(d,) for d in domains])
            for domain, status, detail in db.execute(
                "SELECT c.domain, c.status, c.detail FROM domain_cache c JOIN wanted w USING (domain) "
                "WHERE c.expires_at > ? AND c.learned_healthy = 1",
                (stamp,),
            ):
                out[domain] = (status, detail)
        return out

    def cache_domains(self, results: Sequence[DomainResult], now: dt.datetime) -> None:
        """Store results of a healthy run until their TTL runs out (``unknown`` is never passed here)."""
        rows = [
            (r.domain, r.status, r.detail, now.isoformat(), (now + dt.timedelta(seconds=r.ttl)).isoformat(), 1)
            for r in results
        ]
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO domain_cache VALUES (?, ?, ?, ?, ?, ?)", rows)

    def record_run(self, run_id: str, as_of: dt.date, run_dir: str, summary: dict[str, object]) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs (run_id, published_at, as_of, run_dir, summary) VALUES (?, ?, ?, ?, ?)",
                (
                    run_id,
                    dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    as_of.isoformat(),
                    run_dir,
                    json.dumps(summary, sort_keys=True),
                ),
            )

    def runs(self) -> list[dict[str, object]]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT run_id, published_at, as_of, run_dir, summary FROM runs ORDER BY run_id"
            ).fetchall()
        return [dict(run_id=r[0], published_at=r[1], as_of=r[2], run_dir=r[3], summary=json.loads(r[4])) for r in rows]
