"""The state database: suppression list (keyed hashes), domain cache, a person's link and unlink decisions,
the person id of every record id published (``person_ids``) and run history, in one SQLite file.

WAL mode, a busy timeout and short transactions make two runs at once safe. A run publishes in one
transaction (``transaction``): its suppression entries, its records' person ids and its run record are
committed together with the rename of its run folder, or none of them happen. The HMAC key comes from
``CLEANSE_HMAC_KEY`` or, failing that, from a key file generated once beside the database with
owner-only permissions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import secrets
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from .domains import DomainResult
from .errors import ConfigError, TransientError
from .persons import PERSON_IDS

DEFAULT_STATE = Path("data/state/cleansing.sqlite")
BUSY_TIMEOUT_S = 30.0
DAMAGED_FIX = (
    "Restore the file from a backup, or pass a new --state path; a new state starts with an empty "
    "suppression list, so add your erasures again with cleanse forget."
)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS suppression (
    address_hash TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    added_at TEXT NOT NULL,
    origin TEXT NOT NULL,
    objection_at TEXT
);
CREATE TABLE IF NOT EXISTS domain_cache (
    domain TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    checked_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    learned_healthy INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS person_decisions (
    record_a TEXT NOT NULL,
    record_b TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('link', 'unlink')),
    decided_at TEXT NOT NULL,
    PRIMARY KEY (record_a, record_b)
);
CREATE TABLE IF NOT EXISTS person_ids (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS reconfirm_requests (
    address_hash TEXT NOT NULL,
    asked_on TEXT NOT NULL,
    PRIMARY KEY (address_hash, asked_on)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    published_at TEXT NOT NULL,
    as_of TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    summary TEXT NOT NULL,
    purged_at TEXT
);
"""


# Entries for the suppression list as a frame: the keyed hash and the objection's date (null: undated).
SUPPRESSION_ENTRIES: dict[str, pl.DataType] = {"address_hash": pl.String(), "objection_at": pl.Datetime("us", "UTC")}


def hash_keys(keys: pl.Series, key: bytes) -> pl.Series:
    """HMAC-SHA256 (hex) of each address key, computed once per distinct key."""
    distinct = keys.drop_nulls().unique()
    inner, outer = _pads(key)
    digests = []
    for message in distinct.cast(pl.Binary).to_list():
        # HMAC as RFC 2104 defines it, from the pads hashed once: half the time of hmac.digest per key.
        first = inner.copy()
        first.update(message)
        second = outer.copy()
        second.update(first.digest())
        digests.append(second.digest())
    table = pl.DataFrame({"k": distinct, "h": pl.Series(digests, dtype=pl.Binary).bin.encode("hex")})
    hashed = keys.to_frame("k").join(table, on="k", how="left", maintain_order="left")["h"]
    return hashed.alias(keys.name)


def _pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 already fed the inner and the outer padded key."""
    block = hashlib.sha256().block_size
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    return hashlib.sha256(bytes(b ^ 0x36 for b in key)), hashlib.sha256(bytes(b ^ 0x5C for b in key))


class StateStore:
    """The one place that touches the state database."""

    def __init__(self, path: str | Path = DEFAULT_STATE, timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.timeout = timeout
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with self._connect() as db:
                check = db.execute("PRAGMA quick_check").fetchone()
                if check is None or check[0] != "ok":
                    raise sqlite3.DatabaseError(f"integrity check: {check[0] if check else 'no answer'}")
                db.executescript(_SCHEMA)
                _migrate(db)
        except sqlite3.OperationalError as exc:
            raise self._translate(exc) from exc
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"the state database is damaged ({exc}).", path=self.path, fix=DAMAGED_FIX) from exc
        except OSError as exc:
            raise ConfigError(
                f"the state database cannot be opened ({exc}).",
                path=self.path,
                fix="Pass a writable file with --state.",
            ) from exc
        if self.path.exists():
            os.chmod(self.path, 0o600)

    def _write_ahead_log(self, db: sqlite3.Connection) -> None:
        """Switch a new database to write-ahead logging. The switch fails at once, without waiting for
        the busy timeout, while another connection makes the same switch: it is tried again until the
        timeout has passed."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _locked(self, exc: Exception) -> TransientError:
        return TransientError(
            f"{self.path}: the state database stayed locked by another process for {self.timeout:g} s ({exc}). "
            "Run again when the other run or command has finished."
        )

    def _translate(self, exc: sqlite3.Error) -> Exception:
        """A locked database is worth a retry; any other database error means the file is damaged."""
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
            return self._locked(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("unable to open" in str(exc) or "readonly" in str(exc)):
            return ConfigError(
                f"the state database cannot be opened for writing ({exc}).",
                path=self.path,
                fix="Pass a writable file with --state.",
            )
        return ConfigError(f"the state database is damaged or unusable ({exc}).", path=self.path, fix=DAMAGED_FIX)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=self.timeout)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        try:
            db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            self._write_ahead_log(db)
            with db:
                yield db
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        finally:
            db.close()

    @contextmanager
    def publish_lock(self) -> Iterator[None]:
        """One run at a time publishes to this state database (and its out folder): the lock is a file
        beside the database, held for the publishing step. When another run holds it, a line on stderr
        says so, with that run's process id, and the lock is then waited for. The operating system
        releases it when its holder ends, however it ends."""
        import fcntl

        path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                print(
                    f"cleanse: another run (process {holder}) is publishing to {self.path}: waiting for it to finish",
                    file=sys.stderr,
                    flush=True,
                )
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, begun at once (``BEGIN IMMEDIATE`` waits for the lock up to the busy
        timeout) and committed when the block ends without an error; rolled back otherwise. A locked
        database raises ``TransientError``, a damaged one ``ConfigError``: both before anything changed."""
        try:
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(f"the state database cannot be opened ({exc}).", path=self.path, fix=DAMAGED_FIX) from exc
        try:
            try:
                db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc
            try:
                yield db
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise self._translate(exc) from exc
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        finally:
            db.close()

    def hmac_key(self) -> bytes:
        """The key for suppression hashes; generated once into the state folder when not given.

        The key is written whole to a private temporary file and then linked into place, which fails
        if another process got there first: every process ends up with the one key on disk."""
        from_env = os.environ.get("CLEANSE_HMAC_KEY")
        if from_env:
            return from_env.encode("utf-8")
        key_file = self.path.parent / "hmac.key"
        if not key_file.exists():
            draft = key_file.with_name(f".hmac.key.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(32))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.link(draft, key_file)
            except FileExistsError:
                pass  # another process created it first; use theirs
            finally:
                draft.unlink(missing_ok=True)
        return key_file.read_text().strip().encode("utf-8")

    def suppression(self) -> pl.DataFrame:
        """``address_hash, suppressed_at``: the objection's own date, null for an undated objection."""
        with self._connect() as db:
            rows = db.execute("SELECT address_hash, objection_at FROM suppression").fetchall()
        frame = pl.DataFrame(rows, schema={"address_hash": pl.String, "suppressed_at": pl.String}, orient="row")
        return frame.with_columns(pl.col("suppressed_at").str.to_datetime(time_zone="UTC", time_unit="us"))

    def requests(self) -> pl.DataFrame:
        """``address_hash, asked_on``: every reconfirmation recorded as sent."""
        with self._connect() as db:
            rows = db.execute("SELECT address_hash, asked_on FROM reconfirm_requests").fetchall()
        frame = pl.DataFrame(rows, schema={"address_hash": pl.String, "asked_on": pl.String}, orient="row")
        return frame.with_columns(pl.col("asked_on").str.to_date())

    def record_requests(self, hashes: Sequence[str], asked_on: dt.date, not_since: dt.date) -> tuple[int, int]:
        """Record reconfirmations sent on ``asked_on``; an address already asked on or after ``not_since``
        (the day the list was made) is not asked again. Returns (recorded, refused)."""
        with self.transaction() as db:
            asked = {
                h
                for (h,) in db.execute(
                    "SELECT address_hash FROM reconfirm_requests WHERE asked_on >= ?", (not_since.isoformat(),)
                )
            }
            fresh = sorted(set(hashes) - asked)
            db.executemany(
                "INSERT OR IGNORE INTO reconfirm_requests VALUES (?, ?)", [(h, asked_on.isoformat()) for h in fresh]
            )
        return len(fresh), len(set(hashes)) - len(fresh)

    def suppression_entry(self, address_hash: str) -> dict[str, str | None] | None:
        """The list's entry for one keyed hash: when it was added and the objection's own date."""
        with self._connect() as db:
            row = db.execute(
                "SELECT added_at, objection_at FROM suppression WHERE address_hash = ?", (address_hash,)
            ).fetchone()
        return None if row is None else {"added_at": row[0], "objection_at": row[1]}

    def suppress(
        self,
        entries: Sequence[tuple[str, dt.datetime | None]] | pl.DataFrame,
        reason: str,
        origin: str,
        db: sqlite3.Connection | None = None,
    ) -> int:
        """Add ``(hash, objection date or None for undated)`` entries (or a frame of them:
        ``SUPPRESSION_ENTRIES``) to the suppression list; returns how many were new. An address already
        listed keeps the stricter date: undated over dated, else the later one, so the list does not
        depend on the order in which runs saw the objections."""
        added = _stamp(dt.datetime.now(dt.UTC))
        if not isinstance(entries, pl.DataFrame):
            entries = pl.DataFrame(list(entries), schema=SUPPRESSION_ENTRIES, orient="row")
        # Few distinct dates: each is written out once.
        whens = entries.select(pl.col("objection_at").unique().drop_nulls())
        stamps = whens.with_columns(
            pl.Series("_stamp", [_stamp(when) for when in whens["objection_at"].to_list()], dtype=pl.String)
        )
        # In key order the index takes the rows in one pass: half the time of random order. Sorted by the
        # key alone: one address named twice, dated and undated, has no order of its dates. The rows are
        # handed to SQLite one at a time, never held as Python objects all at once.
        table = (
            entries.join(stamps, on="objection_at", how="left", maintain_order="left")
            .select("address_hash", "_stamp")
            .sort("address_hash", maintain_order=True)
        )
        rows = ((h, reason, added, origin, stamp) for h, stamp in table.iter_rows())
        sql = (
            "INSERT INTO suppression (address_hash, reason, added_at, origin, objection_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(address_hash) DO UPDATE SET objection_at = CASE "
            "WHEN suppression.objection_at IS NULL OR excluded.objection_at IS NULL THEN NULL "
            "ELSE max(suppression.objection_at, excluded.objection_at) END"
        )
        if db is not None:
            return _insert_new(db, rows, sql)
        with self.transaction() as conn:
            return _insert_new(conn, rows, sql)

    def decide(self, record_a: str, record_b: str, decision: str) -> None:
        """Record a person's decision that two records are one person (``link``) or two (``unlink``);
        a later decision on the same pair replaces an earlier one. Only the record ids are kept."""
        first, second = sorted((record_a, record_b))
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO person_decisions VALUES (?, ?, ?, ?)",
                (first, second, decision, dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
            )

    def person_decisions(self) -> pl.DataFrame:
        """``record_a, record_b, decision``: every link and unlink a person recorded."""
        with self._connect() as db:
            rows = db.execute("SELECT record_a, record_b, decision FROM person_decisions").fetchall()
        return pl.DataFrame(
            rows, schema={"record_a": pl.String, "record_b": pl.String, "decision": pl.String}, orient="row"
        )

    def persons(self) -> pl.DataFrame:
        """``record_id, person_id``: the person id each record had in the latest run that published it."""
        with self._connect() as db:
            return self._person_ids(db)

    def set_persons(self, rows: pl.DataFrame, db: sqlite3.Connection) -> None:
        """Record ``record_id, person_id`` rows (new records, and records that moved to another person)
        inside the publishing transaction, over what is recorded now: a run that published meanwhile
        keeps what it recorded for every other record."""
        if rows.height == 0:
            return
        current = self._person_ids(db)
        merged = pl.concat([current.join(rows, on="record_id", how="anti"), rows.select(current.columns)])
        db.execute("INSERT OR REPLACE INTO person_ids (id, data) VALUES (1, ?)", (_parquet(merged),))

    def _person_ids(self, db: sqlite3.Connection) -> pl.DataFrame:
        """The mapping is read and written whole by every run, so it is kept as one Parquet value: a million
        records read in 0.06 s where a million rows take a second."""
        row = db.execute("SELECT data FROM person_ids WHERE id = 1").fetchone()
        if row is None:
            return pl.DataFrame(schema=PERSON_IDS)
        try:
            frame = pl.read_parquet(io.BytesIO(row[0]))
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise ConfigError(
                f"the state database's person ids cannot be read ({type(exc).__name__}).",
                path=self.path,
                fix=DAMAGED_FIX,
            ) from exc
        if dict(frame.schema) != PERSON_IDS or frame["record_id"].n_unique() != frame.height:
            raise ConfigError(
                "the state database's person ids are not a record_id, person_id table, one row per record.",
                path=self.path,
                fix=DAMAGED_FIX,
            )
        return frame

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

    def record_run(
        self, run_id: str, as_of: dt.date, run_dir: str, summary: dict[str, object], db: sqlite3.Connection
    ) -> None:
        """Record a published run, inside the publishing transaction."""
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

    def runs(self) -> list[dict[str, Any]]:
        """Every published run, oldest first, with ``purged_at`` once retention removed its personal data."""
        with self._connect() as db:
            rows = db.execute(
                # In the order they were published (run ids of one second do not sort by time).
                "SELECT run_id, published_at, as_of, run_dir, summary, purged_at FROM runs ORDER BY rowid"
            ).fetchall()
        return [
            dict(run_id=r[0], published_at=r[1], as_of=r[2], run_dir=r[3], summary=json.loads(r[4]), purged_at=r[5])
            for r in rows
        ]

    def mark_purged(self, run_id: str, at: dt.datetime) -> None:
        """Record that a run folder's personal-data files were deleted; its record stays."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET purged_at = ? WHERE run_id = ?", (at.isoformat(timespec="seconds"), run_id))


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    return buffer.getvalue()


def _stamp(when: dt.datetime | None) -> str | None:
    return None if when is None else when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _insert_new(db: sqlite3.Connection, rows: Iterable[tuple[str, str, str | None, str, str | None]], sql: str) -> int:
    """Upsert ``rows`` inside a write transaction; returns how many hashes were not listed before."""
    before: int = db.execute("SELECT count(*) FROM suppression").fetchone()[0]
    db.executemany(sql, rows)
    after: int = db.execute("SELECT count(*) FROM suppression").fetchone()[0]
    return after - before


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a database from an earlier version up to date without trusting what it cannot vouch for."""
    cache = {row[1] for row in db.execute("PRAGMA table_info(domain_cache)")}
    if "learned_healthy" not in cache:  # from before the column: trust none of the cached answers
        db.execute("ALTER TABLE domain_cache ADD COLUMN learned_healthy INTEGER NOT NULL DEFAULT 0")
    suppression = {row[1] for row in db.execute("PRAGMA table_info(suppression)")}
    if "objection_at" not in suppression:
        # Entries from before the column: a forget request is dated by its request; an objection a run
        # saw has no known date of its own, so it is undated and never lifted.
        db.execute("ALTER TABLE suppression ADD COLUMN objection_at TEXT")
        db.execute("UPDATE suppression SET objection_at = added_at WHERE origin = 'cleanse forget'")
    if "purged_at" not in {row[1] for row in db.execute("PRAGMA table_info(runs)")}:
        db.execute("ALTER TABLE runs ADD COLUMN purged_at TEXT")  # runs from before retention: none purged
