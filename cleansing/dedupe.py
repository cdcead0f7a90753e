"""Dedupe: which records belong to one person.

1. **Prepare** comparable fields: names case- and accent-folded (a full name split into first and last),
   street, second address line, postcode, city, region, company, phone in E.164, the email's local
   part. Only the fields the input actually fills are used.
2. **Block**: records that share any of several cheap keys become candidate pairs (a pair missed by
   one key is caught by another); oversized blocks (a switchboard number shared by hundreds) are
   skipped.
3. **Score**: each field of a pair gets an agreement level from rapidfuzz, computed over all pairs at
   once (``process.cpdist``). A Fellegi–Sunter model turns levels into match weights: the
   u-probabilities come from random pairs, the m-probabilities from EM on the candidate pairs, and an
   exact agreement on a common value (surname "Andersson", a shared switchboard) weighs less than on
   a rare one.
4. **Cluster**: pairs above the threshold, plus every pair with the same address key, are joined by
   connected components. A component with a pair inside it that is clearly two people is split by
   requiring stronger links.

``assign_persons`` adds ``person_key`` (the cluster) and ``owns_mailbox`` (the email's local part is made
of the record's own names) to every record. Records of one address are one
person, except where people of clearly different first names share the mailbox (a household's
``familjen.berg@``): classify then treats that address as a unit of its own.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, JaroWinkler, Levenshtein, Prefix

from .providers import FREE_MAIL_DOMAINS, HOUSEHOLD_WORDS, ROLE_LOCAL_PARTS

MAX_BLOCK = 30
# The columns whose codes at both ends of every pair are held at once: the fields are compared one after
# another, and held for all of them the codes would cost more than the records.
ENDS_HELD = 4
EXTENSION = r"(?i)\b(?:ext|extension|ankn|anknytning)\.?\s*(\d{1,6})\s*$"
COARSE_KEYS = (0, 1, 4, 5, 10)  # names alone, postcode with two letters, phone (switchboards)
RANDOM_PAIRS = 200_000
MATCH_PROBABILITY = 0.9  # posterior a pair must reach to be merged: a wrong merge costs more than a miss
STRANGERS = -8.0  # a pair inside a component this far below zero is evidence of a wrong chain
TRAINING_ROUNDS = 4
TRAINING_PAIRS = 1_000_000  # candidate pairs m is learned from (a random sample beyond this)
CERTAIN = 20.0  # match weight of the other fields that makes a pair a training example for m
PRIOR = 1e-4
SWAP = 0.85  # both names this similar crosswise: first and last name were swapped
# Jaro-Winkler similarity for a weak and a strong agreement. Swedish surnames share their "-sson"
# ending, so a surname must come closer than a first name to count.
JW_LEVELS = {"first": (0.80, 0.92), "name": (0.80, 0.92), "place": (0.80, 0.92), "handle": (0.80, 0.92)}
# Names count as clearly different (for the vetoes) below this similarity and more than one typo apart;
# Swedish surnames share their "-sson" ending, so similar-looking ones must come this close.
DIFFERENT_NAMES = 0.92
# Below this similarity, and more than one typo apart, two names have hardly a letter in common: a pair
# whose first and last names are both this unlike (and not swapped) is two people, even at one address.
UNLIKE_NAMES = 0.65
# First names this far apart (and more than one typo) on one mailbox or phone are two people of one
# household or office; nearer ones may be one name with a slip in each record.
OTHER_FIRST_NAME = 0.75

NICKNAMES = {
    "bob": "robert",
    "rob": "robert",
    "bobby": "robert",
    "bill": "william",
    "will": "william",
    "liz": "elizabeth",
    "beth": "elizabeth",
    "kate": "katherine",
    "katie": "katherine",
    "jim": "james",
    "jimmy": "james",
    "mike": "michael",
    "micke": "mikael",
    "dan": "daniel",
    "danne": "daniel",
    "tom": "thomas",
    "tommy": "thomas",
    "kalle": "karl",
    "calle": "carl",
    "lasse": "lars",
    "pelle": "per",
    "olle": "olof",
    "nisse": "nils",
    "janne": "jan",
    "stina": "kristina",
    "kicki": "kristina",
    "lotta": "charlotte",
    "maja": "maria",
    "sanna": "susanna",
    "jonte": "jonathan",
    "andy": "andrew",
    "steve": "stephen",
    "chris": "christopher",
    "matt": "matthew",
    "nick": "nicholas",
    "sam": "samuel",
    "ben": "benjamin",
    "alex": "alexander",
}


def distinct(values: np.ndarray, in_place: bool = False) -> np.ndarray:
    """The sorted distinct values, as ``np.unique`` gives them: by sorting, which for a million integers
    takes a fiftieth of the time numpy's hash-based ``unique`` takes. With ``in_place`` ``values`` itself
    is sorted, one copy fewer, for an array nothing else needs."""
    ordered = values if in_place else np.sort(values)
    if in_place:
        ordered.sort()
    if len(ordered) == 0:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    out: np.ndarray = ordered[keep]
    return out


def _fold(expr: pl.Expr) -> pl.Expr:
    return (
        expr.str.normalize("NFKD")
        .str.replace_all(r"\p{M}", "")
        .str.to_lowercase()
        .str.replace_all(r"[^a-z0-9 ]", " ")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
        .replace("", None)
    )


def _column(frame: pl.DataFrame, name: str) -> pl.Expr:
    return pl.col(name) if name in frame.columns else pl.lit(None, pl.String)


FOLDED = ("full_name", "first_name", "last_name", "street", "street2", "city", "region", "company")


def _with_folded(contacts: pl.DataFrame) -> pl.DataFrame:
    """``__f_<column>``: each text column folded once per distinct value and joined back in row order
    (a million records hold a few thousand names)."""
    folded = {}
    for name in FOLDED:
        if name in contacts.columns:
            distinct = contacts.select(pl.col(name).unique()).with_columns(_fold(pl.col(name)).alias("_f"))
            joined = contacts.select(name).join(distinct, on=name, how="left", nulls_equal=True, maintain_order="left")
            folded[f"__f_{name}"] = joined["_f"]
    return contacts.with_columns(**folded)


def _name_derived(letters: pl.Expr, first: pl.Expr, last: pl.Expr) -> pl.Expr:
    """Whether an email's local part (dots, dashes, underscores and trailing digits removed) is built
    from the record's own names alone: ``anna``, ``annaberg``, ``aberg``, ``annab``, ``berganna``."""
    f, l_ = first.str.replace_all(" ", "", literal=True), last.str.replace_all(" ", "", literal=True)
    f1, l1 = f.str.slice(0, 1), l_.str.slice(0, 1)
    forms = [f, l_, pl.concat_str([f, l_]), pl.concat_str([l_, f]), pl.concat_str([f1, l_]), pl.concat_str([f, l1])]
    forms += [pl.concat_str([l_, f1]), pl.concat_str([f1, l1])]
    return pl.any_horizontal([letters == form for form in forms]).fill_null(False)


def _household(letters: pl.Expr, last: pl.Expr) -> pl.Expr:
    """Whether an email's local part (as in ``_name_derived``) names a household: a household word and the
    record's surname, ``familjenberg`` or ``bergfamily``. Every Berg of that household may write from it,
    and another family Berg has the same handle at another provider."""
    l_ = last.str.replace_all(" ", "", literal=True)
    words = pl.lit(list(HOUSEHOLD_WORDS), pl.List(pl.String))
    before = letters.str.ends_with(l_) & letters.str.strip_suffix(l_).is_in(words)
    after = letters.str.starts_with(l_) & letters.str.strip_prefix(l_).is_in(words)
    return ((l_.str.len_chars() > 0) & (before | after)).fill_null(False)


def prepare(contacts: pl.DataFrame) -> pl.DataFrame:
    """The comparable fields of every record, keyed by ``_row``."""
    base = _with_folded(contacts)
    # Lazily, collected by the streaming engine, which spreads one chunk's rows over the cores.
    lazy = base.lazy()

    def folded(name: str) -> pl.Expr:
        return _column(base, f"__f_{name}")

    full = folded("full_name")
    comma = _column(base, "full_name").str.contains(",")
    full_first = pl.when(comma).then(full.str.extract(r"^\S+\s+(.*)$")).otherwise(full.str.extract(r"^(\S+)"))
    full_last = pl.when(comma).then(full.str.extract(r"^(\S+)")).otherwise(full.str.extract(r"\s(\S+)$"))
    # Before the first "@" and any "+tag"; after the first "@".
    parts = _column(base, "address_key").str.splitn("@", 2)
    local = parts.struct.field("field_0").str.splitn("+", 2).struct.field("field_0")
    # Each used several times below, so each computed once, as a column.
    lazy = lazy.with_columns(
        pl.coalesce(folded("first_name"), full_first).alias("__first"),
        pl.coalesce(folded("last_name"), full_last).alias("__last"),
        local.str.replace_many({".": "", "_": "", "-": ""}).alias("__bare"),
        parts.struct.field("field_1").alias("__domain"),
    )
    first, last, bare, domain = pl.col("__first"), pl.col("__last"), pl.col("__bare"), pl.col("__domain")
    # The namesakes erik.johansson@yahoo.com and erik_johansson@outlook.com share nothing but their name.
    lazy = lazy.with_columns(
        bare.is_in(list(ROLE_LOCAL_PARTS)).fill_null(False).alias("__role"),
        bare.str.replace(r"\d+$", "").alias("__stem"),
    )
    role, stem = pl.col("__role"), pl.col("__stem")
    lazy = lazy.with_columns(
        _name_derived(stem, first, last).alias("__built"), _household(stem, last).alias("__household")
    )
    built, household = pl.col("__built"), pl.col("__household")
    return (
        lazy.select(
            pl.col("_row"),
            first.alias("first"),
            last.alias("last"),
            folded("street").alias("street"),
            folded("street2").alias("street2"),
            folded("city").alias("city"),
            _column(base, "postcode").str.replace_all(r"\s", "").replace("", None).alias("postcode"),
            folded("region").alias("region"),
            folded("company").str.replace(r"\s(ab|aktiebolag|inc|ltd|llc|gmbh|as|oy)$", "").alias("company"),
            _column(base, "phone_e164").alias("phone"),
            # A switchboard number with an extension is one person's line: for blocking only.
            pl.concat_str(
                [_column(base, "phone_e164"), pl.lit(" ext "), _column(base, "phone").str.extract(EXTENSION)]
            ).alias("line"),
            # The local part as evidence of its own only where it is more than the record's names (or its
            # household's): one trailing digit is how a provider tells namesakes apart, two or more
            # (annaberg85) are the person's own choice.
            pl.when(role | ((built | household) & (bare.str.len_chars() - stem.str.len_chars() <= 1)))
            .then(None)
            .otherwise(bare)
            .alias("local"),
            pl.when(role).then(None).otherwise(bare).alias("mailbox"),  # for blocking only
            # Whose mailbox it is: the record whose names (and any digits) make up its local part.
            (~role & built).alias("owner"),
            _column(base, "address_key").alias("address"),
            # A work address's domain: two different addresses at one company are two people.
            pl.when(~domain.is_in(list(FREE_MAIL_DOMAINS)) & ~role).then(domain).alias("workdomain"),
        )
        .with_columns(
            pl.col("first").str.extract(r"^(\S+)").replace(NICKNAMES).alias("first_canon"),
        )
        .collect(engine="streaming")
    )


def _blocking_keys(p: pl.DataFrame) -> list[pl.Expr]:
    f1, f2, f3 = (pl.col("first").str.slice(0, n) for n in (1, 2, 3))
    l1, l2, l3, l4 = (pl.col("last").str.slice(0, n) for n in (1, 2, 3, 4))
    swapped = pl.when(f3 < l3).then(pl.concat_str([f3, l3])).otherwise(pl.concat_str([l3, f3]))
    return [
        pl.concat_str([l4, f1]),
        swapped,
        pl.concat_str([pl.col("postcode"), l3, f1]),
        pl.concat_str([pl.col("postcode"), f3, l1]),
        pl.concat_str([pl.col("postcode"), l2]),
        pl.concat_str([pl.col("postcode"), f2]),
        pl.concat_str([pl.col("street").str.slice(0, 8), pl.col("postcode").str.slice(0, 2)]),
        pl.concat_str([pl.col("city").str.slice(0, 5), l3]),
        pl.concat_str([pl.col("street").str.slice(0, 10), f1]),
        pl.concat_str([pl.col("first_canon"), pl.col("street2").str.slice(0, 5)]),
        pl.col("phone"),
        pl.col("mailbox"),
        pl.col("line"),
        pl.concat_str([pl.col("company").str.slice(0, 8), l2]),
        pl.concat_str([pl.col("company").str.slice(0, 8), f1]),
        pl.concat_str([pl.col("company"), l3, f1]),
        pl.col("address"),
        # Keys that stay small in a million records, where the company-prefix keys above overflow and
        # are dropped: a company's beginning with the name's (a typo later in either), the whole company
        # with the first name's initial (a typo early in the surname).
        pl.concat_str([pl.col("company").str.slice(0, 8), l3, f1]),
        pl.concat_str([pl.col("company"), f1]),
    ]


def blocking_rows(p: pl.DataFrame, position: pl.Expr) -> list[pl.LazyFrame]:
    """Per blocking key (numbered ``key``): ``key, k, i``, every record's value of the key, as a 64-bit
    hash ``k`` (blocks are grouped by a number, not by a text), with the record's ``position``. Row by
    row, so a partition's rows are its records' rows. (Two values of one hash would make one block of
    both: more pairs compared or, past the block limit, neither block's. With a million records that
    happens to about one run in two million, with ten million to one in twenty thousand; the same
    values always give the same blocks.)"""
    return [
        p.lazy()
        .select(pl.lit(i, pl.Int8).alias("key"), key.alias("k"), position.cast(pl.Int64).alias("i"))
        .drop_nulls("k")
        .with_columns(pl.col("k").hash(seed=0))
        for i, key in enumerate(_blocking_keys(p))
    ]


def block_pairs(rows: pl.LazyFrame, width: int, max_block: int = MAX_BLOCK, key: int | None = None) -> pl.LazyFrame:
    """``code``: ``left * width + right`` for the pairs of records (``left < right``) that share a block
    of ``blocking_rows``, once per block they share. A block is all rows with one ``key, k``, so any set
    of rows that holds whole blocks (a bucket of a shuffle by ``key, k``) gives its blocks' pairs. With
    ``key`` every row is of that one key, and blocks are told apart by ``k`` alone (a grouping by one
    column costs half one by two)."""
    # Coarse keys get a smaller block limit: in a big file their blocks fill up with namesakes,
    # neighbours and colleagues at one switchboard.
    coarse = pl.col("key").is_in(list(COARSE_KEYS)) if key is None else pl.lit(key in COARSE_KEYS)
    limit = pl.when(coarse).then(max_block // 5).otherwise(max_block)
    block = ["key", "k"] if key is None else ["k"]
    # Most values are one record's own, and blocks past their limit are not compared: the rows of the
    # others are joined with themselves on their block.
    rows = rows.filter(pl.len().over(block).is_between(2, limit)).select(*block, "i")
    return (
        rows.join(rows, on=block, suffix="_r")
        .filter(pl.col("i") < pl.col("i_r"))
        .select((pl.col("i") * width + pl.col("i_r")).alias("code"))
    )


def candidate_pairs(p: pl.DataFrame, max_block: int = MAX_BLOCK) -> Pairs:
    """Pairs of record positions ``left < right`` that share at least one blocking key."""
    # Key by key: one grouping each costs less than one over all of them.
    rows = blocking_rows(p, pl.int_range(pl.len(), dtype=pl.Int64))
    codes = pl.concat([block_pairs(lazy, p.height, max_block, key) for key, lazy in enumerate(rows)])
    return pairs_from_codes(codes.collect(engine="streaming")["code"], p.height)


def pairs_from_codes(codes: pl.Series, width: int) -> Pairs:
    """The distinct pairs of ``left * width + right`` codes, in order: the model trains on a sample of the
    pairs, which must not depend on hashing order (nor on how the pairs were found)."""
    return _pairs(distinct(codes.to_numpy()), width)


def _pairs(codes: np.ndarray, width: int) -> Pairs:
    """Pairs of sorted distinct ``left * width + right`` codes; positions as int32 where they fit."""
    kind = np.int32 if width < 2**31 else np.int64
    return Pairs((codes // width).astype(kind), (codes % width).astype(kind))


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # name, first, text, place, code, exact


FIELDS = (
    Field("first", "first"),
    Field("last", "name"),
    Field("street", "text"),
    Field("street2", "text"),
    Field("city", "place"),
    Field("postcode", "code"),
    Field("region", "exact"),
    Field("company", "text"),
    Field("phone", "exact"),
    Field("local", "place"),
)
LEVELS = 4  # 0 disagree … 3 exact; -1 missing


@dataclass(frozen=True)
class Column:
    """One prepared field as an integer code per record (-1 where it is missing) into its distinct
    values: every comparison is made once per distinct value or pair of values, and a pair's two
    records are looked up by position, never joined."""

    codes: np.ndarray  # int32, one per record
    values: pl.Series  # the distinct values

    @cached_property
    def texts(self) -> np.ndarray:
        """The distinct values as Python strings, then "" (what code -1 picks): made only for a field
        that is scored, as most distinct values (addresses, phones) are only compared for equality."""
        return np.append(self.values.to_numpy().astype(object), "")

    def per_value(self, expr: pl.Expr, missing: Any) -> np.ndarray:
        """``expr`` (on ``pl.col("v")``) for every distinct value, indexable by code: code -1 gives
        ``missing``."""
        computed = self.values.to_frame("v").select(expr).to_series().to_numpy()
        return np.append(computed, np.array([missing], dtype=computed.dtype))


def code_columns(p: pl.DataFrame | pl.LazyFrame) -> dict[str, Column]:
    """Every prepared field of ``p`` that is compared as a :class:`Column`, all coded at once: a column at
    a time, so that a scan of files is never held whole."""
    names = [n for n in p.collect_schema().names() if n not in ("_row", "line", "owner", "mailbox")]  # blocking only
    uniques = pl.collect_all(
        [p.lazy().select(pl.col(name).drop_nulls().unique(maintain_order=True).alias("v")) for name in names],
        engine="streaming",
    )
    numbered = [d.lazy().with_row_index("c").with_columns(pl.col("c").cast(pl.Int32)) for d in uniques]
    codes = pl.collect_all(
        [
            p.lazy()
            .select(pl.col(name).alias("v"))
            .join(table, on="v", how="left", maintain_order="left")
            .select(pl.col("c").fill_null(-1))
            for name, table in zip(names, numbered, strict=True)
        ],
        engine="streaming",
    )
    columns = {}
    for name, values, coded in zip(names, uniques, codes, strict=True):
        columns[name] = Column(coded.to_series().to_numpy(), values.to_series())
    return columns


@dataclass(frozen=True)
class Pairs:
    """Pairs of records by position: the candidate pairs (``left < right``) or random pairs."""

    left: np.ndarray
    right: np.ndarray
    _ends: OrderedDict[int, tuple[Column, np.ndarray, np.ndarray]] = field(
        default_factory=OrderedDict, compare=False, repr=False
    )

    def __len__(self) -> int:
        return len(self.left)

    def ends(self, column: Column) -> tuple[np.ndarray, np.ndarray]:
        """``column``'s codes at the left and at the right of every pair (int32), looked up once."""
        key = id(column)
        if key in self._ends:
            self._ends.move_to_end(key)
        else:
            at = (column.codes[self.left], column.codes[self.right])  # int32, as the codes are
            self._ends[key] = (column, *at)
            if len(self._ends) > ENDS_HELD:
                self._ends.popitem(last=False)
        _, left, right = self._ends[key]
        return left, right

    def exact(self, column: Column) -> np.ndarray:
        a, b = self.ends(column)
        same: np.ndarray = (a == b) & (a >= 0)
        return same

    def present(self, column: Column) -> np.ndarray:
        a, b = self.ends(column)
        both: np.ndarray = (a >= 0) & (b >= 0)
        return both

    def feature(self, column: Column, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A per-value feature (from :meth:`Column.per_value`) at both ends of every pair."""
        a, b = self.ends(column)
        return values[a], values[b]

    def similarity(self, a: Column, b: Column, scorer: Any, where: np.ndarray | None = None) -> np.ndarray:
        """``scorer`` between ``a`` at the left and ``b`` at the right of every pair (with ``where``, of the
        pairs where it holds; the others get ``NaN``), computed in parallel by rapidfuzz; a missing value
        counts as the empty string. Where the values repeat (names, cities) each distinct pair of values
        is scored once."""
        if where is not None:
            scores = np.full(len(self), np.nan, dtype=np.float32)
            scores[where] = Pairs(self.left[where], self.right[where]).similarity(a, b, scorer)
            return scores
        left, right = self.ends(a)[0], self.ends(b)[1]
        width = len(b.values) + 1
        space = (len(a.values) + 1) * width
        if space > 4 * len(self):  # values that rarely repeat (postcodes, local parts): every pair,
            # but a value compared with itself (a pair blocked on it) once per value.
            scores = np.empty(len(self), dtype=np.float32)
            same = left == right if a is b else np.zeros(len(self), dtype=bool)
            if same.any():
                own = distinct(left[same])
                own_scores = process.cpdist(a.texts[own], a.texts[own], scorer=scorer, workers=-1)
                scores[same] = np.asarray(own_scores, dtype=np.float32)[np.searchsorted(own, left[same])]
            differ = ~same
            scores[differ] = process.cpdist(a.texts[left[differ]], b.texts[right[differ]], scorer=scorer, workers=-1)
            return scores
        key = (left.astype(np.int64) + 1) * width + (right + 1)
        seen = np.zeros(space, dtype=bool)
        seen[key] = True
        keys = np.flatnonzero(seen)
        index = np.zeros(space, dtype=np.int64)
        index[keys] = np.arange(len(keys))
        scores = process.cpdist(a.texts[keys // width - 1], b.texts[keys % width - 1], scorer=scorer, workers=-1)
        similarity: np.ndarray = np.asarray(scores, dtype=np.float32)[index[key]]
        return similarity


def levels(
    columns: dict[str, Column], pairs: Pairs, fields: Sequence[Field], sims: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Agreement level per field per pair: -1 missing, 0 disagree, 1 weak, 2 strong, 3 exact. The raw
    name similarities go into ``sims`` for the name vetoes."""
    sims = {} if sims is None else sims
    out: dict[str, np.ndarray] = {}
    for f in fields:
        column = columns[f.name]
        missing = ~pairs.present(column)
        exact = pairs.exact(column)
        level = np.zeros(len(pairs), dtype=np.int8)
        # Names are scored on every pair, for the name vetoes; any other field only where both values are
        # there and differ: the level of the others is set below whatever a score would say.
        undecided = None if f.kind in ("first", "name") else ~missing & ~exact
        if f.kind in ("first", "name", "place", "handle"):
            jw = pairs.similarity(column, column, JaroWinkler.normalized_similarity, undecided)
            sims[f"{f.name}_jw"] = jw
            weak, strong = JW_LEVELS[f.kind]
            level[jw >= weak] = 1
            level[jw >= strong] = 2
            if f.kind in ("first", "name"):
                # One typo (a letter dropped, swapped or wrong) in a name of four letters or more.
                la, lb = pairs.feature(column, column.per_value(pl.col("v").str.len_chars(), 0))
                osa = pairs.similarity(column, column, OSA.distance)
                sims[f"{f.name}_osa"] = osa
                typo = (osa <= 1) & (np.minimum(la, lb) >= 4)
                level[typo & (level < 1)] = 1
            if f.kind == "first":
                canon = pairs.exact(columns["first_canon"])
                abbreviated, initial = _initials(column, pairs)
                level[canon & ~exact] = np.maximum(level[canon & ~exact], 2)
                # An initial is never more than a weak agreement, even with the same initial.
                level[abbreviated] = np.where(initial[abbreviated], 1, 0)
                exact = exact & ~abbreviated
        elif f.kind == "text":
            ratio = pairs.similarity(column, column, fuzz.token_sort_ratio, undecided) / 100
            level[ratio >= 0.65] = 1
            level[ratio >= 0.85] = 2
            # "Vasagatan 11" and "Vasagatan 31" are different buildings however alike they look.
            digits = pl.col("v").str.replace_all(r"\D+", " ").str.strip_chars().replace("", None)
            na, nb = pairs.feature(column, column.per_value(digits.rank("dense").fill_null(0).cast(pl.Int64), 0))
            level[(na > 0) & (nb > 0) & (na != nb)] = 0
        elif f.kind == "code":
            level[pairs.similarity(column, column, Levenshtein.distance, undecided) <= 1] = 1
        level[exact] = 3
        level[missing] = -1
        out[f.name] = level
    # Swapped first and last names count as agreeing names.
    if "first" in out and "last" in out:
        first, last = columns["first"], columns["last"]
        sims["first_last_jw"] = pairs.similarity(first, last, JaroWinkler.normalized_similarity)
        sims["last_first_jw"] = pairs.similarity(last, first, JaroWinkler.normalized_similarity)
        swap = (sims["first_last_jw"] >= SWAP) & (sims["last_first_jw"] >= SWAP)
        for name in ("first", "last"):
            out[name] = np.where(swap & (out[name] < 2), 2, out[name]).astype(np.int8)
    return out


def _initials(column: Column, pairs: Pairs, other: Column | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, whether either name (``column`` at the left, ``other`` or ``column`` at the right) is a
    single letter, and whether it is then the other's initial."""
    other = column if other is None else other
    short_a = column.per_value(pl.col("v").str.len_chars() == 1, False)[pairs.ends(column)[0]]
    short_b = other.per_value(pl.col("v").str.len_chars() == 1, False)[pairs.ends(other)[1]]
    # The first letter as a number (its UTF-8 bytes read as one integer), -1 where the name is missing.
    hexadecimal = pl.col("v").str.slice(0, 1).cast(pl.Binary).bin.encode("hex")
    letter = hexadecimal.str.to_integer(base=16, strict=False).fill_null(-1)
    letter_a = column.per_value(letter, -1)[pairs.ends(column)[0]]
    letter_b = other.per_value(letter, -1)[pairs.ends(other)[1]]
    abbreviated: np.ndarray = short_a | short_b
    initial: np.ndarray = abbreviated & (letter_a == letter_b) & (letter_a >= 0)
    return abbreviated, initial


def _same_sound(column: Column, pairs: Pairs) -> np.ndarray:
    """Per pair, whether both names begin with the same sound (c and k, w and v, z and s alike)."""
    sound = pl.col("v").str.slice(0, 1).replace({"c": "k", "w": "v", "z": "s", "q": "k"})
    _, code = np.unique(column.per_value(sound, ""), return_inverse=True)
    same: np.ndarray = code[pairs.ends(column)[0]] == code[pairs.ends(column)[1]]
    return same


def _cut_short(column: Column, pairs: Pairs, other: Column) -> np.ndarray:
    """Per pair, whether one name is the other cut short by a form or an export (``sjob`` for
    ``sjoberg``, ``jos`` for ``josefin``): at least three letters, all of them the other's beginning."""
    common = pairs.similarity(column, other, Prefix.similarity)
    length_a = column.per_value(pl.col("v").str.len_chars(), 0)[pairs.ends(column)[0]]
    length_b = other.per_value(pl.col("v").str.len_chars(), 0)[pairs.ends(other)[1]]
    shorter = np.minimum(length_a, length_b)
    cut: np.ndarray = (shorter >= 3) & (common >= shorter)
    return cut


@dataclass
class Model:
    """Fellegi–Sunter weights: ``weights[field][level]`` in log2 units (0 for a missing value), and the
    share of all record pairs that match, which sets the threshold."""

    weights: dict[str, np.ndarray]
    match_share: float

    def score(self, lv: dict[str, np.ndarray]) -> np.ndarray:
        total = np.zeros(len(next(iter(lv.values()))), dtype=np.float64)
        for name, level in lv.items():
            total += self._part(name, level)
        return total

    def _part(self, name: str, level: np.ndarray) -> np.ndarray:
        # Level -1 (missing) picks the last entry: weight 0.
        part: np.ndarray = np.append(self.weights[name][:LEVELS], 0.0)[level]
        return part

    def threshold(self, probability: float) -> float:
        """The match weight at which a pair's posterior match probability reaches ``probability``."""
        prior_log_odds = math.log2(self.match_share / (1 - self.match_share))
        return math.log2(probability / (1 - probability)) - prior_log_odds


def _distribution(level: np.ndarray, mask: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
    """The share of each agreement level among the ``mask``ed pairs (each counted ``times`` over)."""
    chosen = mask & (level >= 0)
    weights = None if times is None else times[chosen]
    counts = np.bincount(level[chosen], weights=weights, minlength=LEVELS).astype(np.float64) + 0.5
    share: np.ndarray = counts / counts.sum()
    return share


def pattern_codes(lv: dict[str, np.ndarray]) -> np.ndarray:
    """Each pair's agreement pattern (a level per field) as one number, a base-5 digit per field: what
    a pair's model weight depends on, in 4 bytes (10 fields give fewer than 5**10 patterns)."""
    code = np.zeros(len(next(iter(lv.values()))), dtype=np.int32)
    for level in lv.values():
        code = code * (LEVELS + 1) + (level.astype(np.int32) + 1)
    return code


def levels_of(codes: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The levels per field (in ``names``' order) of ``pattern_codes``."""
    out: dict[str, np.ndarray] = {}
    rest = codes
    for name in reversed(names):
        rest, digit = np.divmod(rest, LEVELS + 1)
        out[name] = (digit - 1).astype(np.int8)
    return {name: out[name] for name in names}


def _patterns(codes: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct agreement patterns among the pairs (``pattern_codes``, in order), and how many pairs
    have each: a million pairs show a few thousand patterns, and learning or scoring needs each once."""
    times = np.bincount(codes, minlength=(LEVELS + 1) ** len(names))
    unique = np.flatnonzero(times)
    return unique, times[unique]


# Weights for inputs too small to learn from (a few hundred rows): rounded from what the model learns on
# the FEBRL files and on 20,000 generated contacts (benchmarks/bench_dedupe.py), levels 0…3.
DEFAULT_WEIGHTS = {
    "first": (-3.0, 2.0, 5.0, 6.0),
    "last": (-3.0, 2.0, 5.0, 6.0),
    "street": (-3.0, 2.0, 9.0, 10.0),
    "street2": (-2.5, 5.0, 9.5, 9.5),
    "city": (-3.5, 2.0, 2.0, 4.0),
    "postcode": (-3.0, 1.0, 2.0, 9.0),
    "region": (-3.0, 1.5, 1.5, 2.0),
    "company": (-3.0, 2.0, 2.0, 8.0),
    "phone": (-2.0, 2.0, 2.0, 13.0),
    "local": (-1.0, 3.5, 3.5, 12.5),
}
DEFAULT_MATCH_SHARE = 2.75e-4  # puts the 0.9 threshold at about 15 bits
MIN_TRAINING_RECORDS = 1000


def default_model(fields: Sequence[Field]) -> Model:
    return Model({f.name: np.array(DEFAULT_WEIGHTS[f.name]) for f in fields}, DEFAULT_MATCH_SHARE)


def training_draws(n: int, count: int, seed: int = 7) -> tuple[Pairs, np.ndarray | None]:
    """The random pairs of the ``n`` records u is learned from, and the candidate pairs m is learned from:
    the positions of a sample of the ``count`` candidate pairs in order, or None for all of them."""
    rng = np.random.default_rng(seed)
    k = min(RANDOM_PAIRS, max(n * 4, 1000))
    left = rng.integers(0, n, k)
    right = rng.integers(0, n, k)
    keep = left != right
    sample = rng.choice(count, size=TRAINING_PAIRS, replace=False) if count > TRAINING_PAIRS else None
    return Pairs(left[keep], right[keep]), sample


def merge_patterns(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct patterns and their counts (``_patterns``) of several sets of pairs together."""
    kinds = np.concatenate([np.zeros(0, dtype=np.int64), *(k for k, _ in parts)])
    unique, at = np.unique(kinds, return_inverse=True)
    times = np.concatenate([np.zeros(0, dtype=np.int64), *(t for _, t in parts)])
    return unique, np.bincount(at, weights=times, minlength=len(unique)).astype(np.int64)


def learn(
    random_lv: dict[str, np.ndarray],
    trained: tuple[np.ndarray, np.ndarray],
    counted: tuple[np.ndarray, np.ndarray],
    n: int,
    names: Sequence[str],
) -> Model:
    """u from the levels of random pairs (``random_lv``). m per field from the candidate pairs ``trained``
    (distinct patterns and their counts, ``_patterns``) that the *other* fields already call near-certain
    matches (so a field never trains on itself), refined a few times. The match share of all pairs of the
    ``n`` records from the posterior of the candidate pairs (``counted``: all of them, as patterns and
    counts)."""
    u = {name: _distribution(level, np.ones(len(level), dtype=bool)) for name, level in random_lv.items()}
    m = {name: np.array([0.02, 0.05, 0.15, 0.78]) for name in names}
    kinds, times = trained
    train = levels_of(kinds, names)
    for _ in range(TRAINING_ROUNDS):
        model = Model({name: np.log2(m[name] / u[name]) for name in names}, PRIOR)
        total = model.score(train)
        for name, level in train.items():
            others = total - model._part(name, level)
            m[name] = _distribution(level, others >= CERTAIN, times)
    model = Model({name: np.log2(m[name] / u[name]) for name in names}, PRIOR)
    # A pair's model weight is its pattern's: each distinct pattern once, counted as often as it occurs.
    kinds, counts = counted
    weights = model.score(levels_of(kinds, names))
    all_pairs = n * (n - 1) / 2
    share = PRIOR
    for _ in range(50):  # fixed point: the share is the expected matches among all pairs
        odds = np.exp2(np.clip(weights + math.log2(share / (1 - share)), -60, 60))
        share, previous = float(np.clip((counts * (odds / (1 + odds))).sum() / all_pairs, 1e-12, 0.5)), share
        if share == previous:
            break
    model.match_share = share
    return model


def estimate(columns: dict[str, Column], n: int, patterns: np.ndarray, fields: Sequence[Field]) -> Model:
    """``learn`` from the candidate pairs' ``pattern_codes`` and random pairs of the ``n`` records."""
    names = [f.name for f in fields]
    draws, sample = training_draws(n, len(patterns))
    trained = _patterns(patterns if sample is None else patterns[sample], names)
    return learn(levels(columns, draws, fields), trained, _patterns(patterns, names), n, names)


def names_differ(columns: dict[str, Column], pairs: Pairs, sims: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per pair, whether the first names and the last names are clearly different: not similar, not one
    typo apart, not swapped, not an initial or nickname of each other; a missing name never differs.
    ``sims`` holds the similarities ``levels`` computed."""
    first, last = columns["first"], columns["last"]
    alike: dict[tuple[int, int], np.ndarray] = {}  # per pair of columns: an initial or a name cut short
    scored: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def differ(
        a: Column, b: Column, jw: np.ndarray | None, osa: np.ndarray | None, below: float = DIFFERENT_NAMES
    ) -> np.ndarray:
        key = (id(a), id(b))
        if key not in scored:
            jw = pairs.similarity(a, b, JaroWinkler.normalized_similarity) if jw is None else jw
            osa = pairs.similarity(a, b, OSA.distance) if osa is None else osa
            scored[key] = (jw, osa)
        if key not in alike:
            present = (pairs.ends(a)[0] >= 0) & (pairs.ends(b)[1] >= 0)
            alike[key] = ~present | _initials(a, pairs, b)[1]
            if a is b:  # (a first name may well begin a surname: Lars Larsson)
                alike[key] |= _cut_short(a, pairs, b)
        jw, osa = scored[key]
        different: np.ndarray = (jw < below) & (osa > 1) & ~alike[key]
        return different

    nickname = pairs.exact(columns["first_canon"])
    long_first = first.per_value(pl.col("v").str.len_chars() > 1, False)[pairs.ends(first)[0]]
    long_last = last.per_value(pl.col("v").str.len_chars() > 1, False)[pairs.ends(last)[1]]
    first_last_differ = differ(first, last, sims.get("first_last_jw"), None)
    last_first_differ = differ(last, first, sims.get("last_first_jw"), None)
    swapped = ~first_last_differ & ~last_first_differ & long_first & long_last
    # One name of a record like a name of the other's in the other place: half of a swap ("R." "Marcus"
    # for Marcus Rosgren), not a different first name.
    present_fl = (pairs.ends(first)[0] >= 0) & (pairs.ends(last)[1] >= 0)
    present_lf = (pairs.ends(last)[0] >= 0) & (pairs.ends(first)[1] >= 0)
    crosswise = (present_fl & ~first_last_differ) | (present_lf & ~last_first_differ)
    first_differs = differ(first, first, sims.get("first_jw"), sims.get("first_osa"))
    last_differs = differ(last, last, sims.get("last_jw"), sims.get("last_osa"))
    first_unlike = differ(first, first, sims.get("first_jw"), sims.get("first_osa"), UNLIKE_NAMES)
    last_unlike = differ(last, last, sims.get("last_jw"), sims.get("last_osa"), UNLIKE_NAMES)
    return {
        "first": first_differs & ~nickname & ~swapped,
        "last": last_differs & ~swapped,
        # First names of two people, not one name typed twice with a slip each ("Lras", "Lasr").
        # Or, more than a typo apart, beginning with another sound (Lars and Klara, Elin and Malin): a
        # slip rarely hits a name's first letter, and Carl, Karl and Christina, Kristina begin alike.
        "first_of_another": (
            differ(first, first, sims.get("first_jw"), sims.get("first_osa"), OTHER_FIRST_NAME)
            | (differ(first, first, sims.get("first_jw"), sims.get("first_osa"), 1.01) & ~_same_sound(first, pairs))
        )
        & ~nickname
        & ~crosswise,
        # Neither name like either of the other's: not a swap with a typo, not a half-swap.
        "both_unlike": first_unlike
        & last_unlike
        & differ(first, last, sims.get("first_last_jw"), None, UNLIKE_NAMES)
        & differ(last, first, sims.get("last_first_jw"), None, UNLIKE_NAMES)
        & ~nickname,
    }


def _work_conflict(columns: dict[str, Column], pairs: Pairs) -> np.ndarray:
    """Both records have an address at the same company domain, and the addresses differ."""
    address = columns["address"]
    conflict: np.ndarray = pairs.exact(columns["workdomain"]) & pairs.present(address) & ~pairs.exact(address)
    return conflict


def mobile_numbers(values: pl.Series) -> pl.Series:
    """Whether each E.164 number (``+46701234567``) is a mobile number by its country's numbering plan,
    and not one that plan would also take for a fixed line (as in North America): phonenumbers' patterns,
    applied as one regular expression per country calling code the numbers use."""
    import phonenumbers

    numbers = pl.col("v")
    frame = values.to_frame("v")
    heads = {h for n in (1, 2, 3) for h in frame.select(numbers.str.slice(1, n).unique())["v"].to_list()}
    checks = []
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        if str(code) not in heads:
            continue
        # A calling code may serve several regions (+44: GB, GG, IM, JE): a number of any of them counts.
        plans = [phonenumbers.PhoneMetadata.metadata_for_region(r) for r in regions]
        mobiles = [
            m.mobile.national_number_pattern for m in plans if m and m.mobile and m.mobile.national_number_pattern
        ]
        fixed = [
            m.fixed_line.national_number_pattern
            for m in plans
            if m and m.fixed_line and m.fixed_line.national_number_pattern
        ]
        if not mobiles:
            continue
        national = numbers.str.slice(1 + len(str(code)))
        mobile = national.str.contains("^(?:" + "|".join(f"(?:{p})" for p in mobiles) + ")$")
        if fixed:
            mobile = mobile & ~national.str.contains("^(?:" + "|".join(f"(?:{p})" for p in fixed) + ")$")
        checks.append((numbers.str.starts_with(f"+{code}"), mobile))
    found = pl.coalesce([pl.when(prefix).then(mobile) for prefix, mobile in checks] + [pl.lit(False)])
    return frame.select(found.fill_null(False)).to_series()


def _two_mobiles(columns: dict[str, Column], pairs: Pairs, asked: np.ndarray) -> np.ndarray:
    """Of the ``asked`` pairs (whose phone numbers differ), those where both numbers are mobile numbers
    more than one slip apart (a digit wrong, added, dropped or two swapped): a person carries one mobile,
    so these are two people, at one company or not."""
    phone = columns["phone"]
    differs = np.flatnonzero(asked)
    out = np.zeros(len(pairs), dtype=bool)
    if len(differs) == 0:
        return out
    # Only the numbers of these pairs are looked at.
    involved = distinct(np.concatenate([phone.codes[pairs.left[differs]], phone.codes[pairs.right[differs]]]))
    mobile = np.zeros(len(phone.values) + 1, dtype=bool)
    mobile[involved] = mobile_numbers(phone.values.gather(involved)).to_numpy()
    both = differs[mobile[phone.codes[pairs.left[differs]]] & mobile[phone.codes[pairs.right[differs]]]]
    if len(both):
        chosen = Pairs(pairs.left[both], pairs.right[both])
        out[both] = chosen.similarity(phone, phone, OSA.distance) > 1
    return out


def _name_vetoes(
    lv: dict[str, np.ndarray],
    differ: dict[str, np.ndarray],
    shared_phone: np.ndarray,
    work_conflict: np.ndarray,
    same_address: np.ndarray,
    learned: bool,
    two_mobiles: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Different names veto a match however much else agrees. Returns ``(no_link, strangers)``:
    both names different (and not swapped) is never a link on its own; one name different when the
    pair shares nothing but what colleagues share (a company, its street and switchboard) and no
    personal identifier (the email's local part, a phone nobody else has) marks two different people,
    whom no chain of other links may join; so are two first names that clearly differ on one mailbox, one
    phone number or one handle (``familjen.berg`` at two providers): a household or an office shares
    those, a person does not change first name. A missing name neither vetoes nor helps. Where the
    weights were not ``learned`` from the file (too few records), two names both unlike the other's are
    two people even in an export of names and addresses: a household, not a typo."""
    n = len(next(iter(lv.values())))
    missing = np.full(n, -1, dtype=np.int8)
    company, local, phone = lv.get("company", missing), lv.get("local", missing), lv.get("phone", missing)
    first_differs, last_differs = differ["first"], differ["last"]
    street = lv.get("street", missing)
    personal = (local == 3) | ((phone == 3) & ~shared_phone) | same_address
    one_name_differs = first_differs | last_differs
    colleagues = (company >= 2) & ~personal & one_name_differs
    # Where the input has companies, a shared street is most likely a shared workplace.
    same_building = (street >= 2) & ~personal & one_name_differs & ("company" in lv)
    # Two personal phones (numbers nobody else has) that differ, or two addresses at one company's
    # domain: two people.
    # (One name at one company with two numbers is a person with a mobile and a direct line; with two
    # mobiles more than a slip apart, two colleagues of one name.)
    one_person_two_lines = (company >= 2) & ~one_name_differs & ~two_mobiles
    phone_conflict = (phone == 0) & ~shared_phone & ~personal & ~one_person_two_lines
    household = differ["first_of_another"] & ((phone == 3) | same_address | (local == 3))
    colleagues = colleagues | phone_conflict | work_conflict | household
    # In an export with only names and addresses the address is the person's own, and the model's weights
    # decide; where contacts carry companies, phones or emails, two different names are two people.
    contact_data = bool({"company", "phone", "local"} & set(lv))
    both_differ = first_differs & last_differs & contact_data
    if not learned:
        # The default weights come from files whose typos replace whole names; in a small file they would
        # let an address outweigh two names with hardly a letter in common (Karin Holm, Björn Lindqvist).
        both_differ = both_differ | differ["both_unlike"]
    return both_differ | same_building, colleagues


TERM_FREQUENCY_FIELDS = ("phone", "last", "company", "street")


def _two_people_phones(columns: dict[str, Column], pairs: Pairs, differ: dict[str, np.ndarray]) -> np.ndarray:
    """The phone numbers (codes) that two records of ``pairs`` share although they are clearly two people
    (surnames that clearly differ, or first names of two people); ``differ``: ``names_differ`` of the
    pairs."""
    phone = columns["phone"].codes
    two_people = pairs.exact(columns["phone"]) & (differ["last"] | differ["first_of_another"])
    found: np.ndarray = phone[pairs.left[two_people]]
    return found


@dataclass(frozen=True)
class Common:
    """What a comparison must know of all the records, not only of the two in a pair, as values (not
    codes), so that any set of records coded on its own can use it: the phone numbers too many records
    carry to be compared pair by pair, under surnames that begin differently (``crowded``), and per
    field of ``TERM_FREQUENCY_FIELDS`` the values more frequent than the field's average value, with
    their frequencies, and that average."""

    crowded: pl.Series
    frequent: dict[str, tuple[pl.DataFrame, float]]


def common_facts(source: pl.LazyFrame, names: Sequence[str]) -> Common:
    """``Common`` of the prepared records ``source`` (``prepare``), for the compared fields ``names``: a
    count per distinct value, which a scan of the partitions' files gives as well as a frame."""
    queries = []
    if "phone" in names:
        stem = pl.col("last").str.slice(0, 3).fill_null("")  # a missing surname is one more beginning
        queries.append(
            source.select("phone", stem.alias("stem"))
            .drop_nulls("phone")
            .group_by("phone")
            .agg(pl.len().alias("n"), pl.col("stem").n_unique().alias("surnames"))
            .filter((pl.col("n") > MAX_BLOCK // 5) & (pl.col("surnames") > 1))  # beyond the phone key's blocks
            .select(pl.col("phone").alias("v"))
        )
    counted = [name for name in TERM_FREQUENCY_FIELDS if name in names]
    queries += [
        source.select(pl.col(name).alias("v")).drop_nulls().group_by("v").agg(pl.len().cast(pl.Int64).alias("n"))
        for name in counted
    ]
    found = pl.collect_all(queries, engine="streaming")
    crowded = found.pop(0)["v"] if "phone" in names else pl.Series("v", [], pl.String)
    frequent = {}
    for name, counts in zip(counted, found, strict=True):
        n = counts["n"].to_numpy().astype(np.float64)
        # Counts of records: the sums are exact in float64, in any order.
        average = float((n**2).sum()) / max(float(n.sum()), 1.0)
        frequent[name] = (counts.filter(pl.col("n") > average), average)
    return Common(crowded, frequent)


def two_people_phones(columns: dict[str, Column], pairs: Pairs, size: int | None = None) -> pl.Series:
    """The phone numbers (values) that two records of ``pairs`` share although they are clearly two people
    (``_two_people_phones``), the pairs with one number looked at ``size`` (default ``PAIRS_AT_ONCE``) at
    a time."""
    size = PAIRS_AT_ONCE if size is None else size
    phone = columns["phone"]
    found = [np.zeros(0, dtype=np.int32)]
    for _, chunk in _chunks(pairs, size):
        same = np.flatnonzero(chunk.exact(phone))
        if len(same):
            one_number = Pairs(chunk.left[same], chunk.right[same])
            found.append(_two_people_phones(columns, one_number, names_differ(columns, one_number, {})))
    return phone.values.gather(distinct(np.concatenate(found)))


def shared_phones(two_people: Sequence[pl.Series], common: Common) -> pl.Series:
    """The phone numbers several people share (a switchboard, a home phone) rather than one person's own:
    two people's records have it (``two_people``: ``two_people_phones`` of every candidate pair, in any
    parts), or it is ``common.crowded``."""
    return pl.concat([*two_people, common.crowded.rename("v")]).rename("v").unique().sort()


def _frequency_adjustment(
    columns: dict[str, Column], left: np.ndarray, lv: dict[str, np.ndarray], common: Common
) -> np.ndarray:
    """An exact agreement on a common value (a switchboard number, "Andersson") is worth less than on
    a rare one: the weight's u becomes the value's own frequency instead of the field's average."""
    adjust = np.zeros(len(left), dtype=np.float64)
    for name in TERM_FREQUENCY_FIELDS:
        if name not in lv:
            continue
        frequent, average = common.frequent[name]
        count = (
            (columns[name].values.to_frame("v").join(frequent, on="v", how="left", maintain_order="left")["n"])
            .to_numpy()
            .astype(np.float64)
        )
        # A value no more frequent than the average is worth the field's weight: log2(1) = 0.
        count = np.append(np.where(np.isnan(count), average, count), 1.0)[columns[name].codes[left]]
        adjust += np.where(lv[name] == 3, np.minimum(np.log2(average / count), 0.0), 0.0)
    return adjust


# Candidate pairs compared at once. What a comparison needs per pair (similarities, levels, name checks:
# about 150 bytes) is held for these only; every pair keeps its pattern and its vetoes (6 bytes).
PAIRS_AT_ONCE = 2_000_000


COMPARE_THREADS = min(os.cpu_count() or 1, 4)  # threads that compare pairs: as many as validate's workers


def _chunks(pairs: Pairs, size: int) -> Iterator[tuple[slice, Pairs]]:
    for start in range(0, len(pairs), size):
        at = slice(start, start + size)
        yield at, Pairs(pairs.left[at], pairs.right[at])


@dataclass(frozen=True)
class Compared:
    """What the comparison of every candidate pair leaves: its agreement pattern (``pattern_codes``), and
    the rules' verdicts: no link on the model's word alone, clear strangers, one person's own address."""

    patterns: np.ndarray
    no_link: np.ndarray
    strangers: np.ndarray
    same_person: np.ndarray


def compare(
    columns: dict[str, Column],
    pairs: Pairs,
    fields: Sequence[Field],
    learned: bool,
    mailbox: np.ndarray,
    shared: pl.Series,
    size: int | None = None,
) -> Compared:
    """Compare the candidate ``pairs`` ``size`` (default ``PAIRS_AT_ONCE``) at a time, in ``COMPARE_THREADS``
    threads, with the same result for any ``size`` and any number of threads. ``mailbox``: per record,
    whether its address is a personal mailbox (not a role's); ``shared``: the phone numbers several people
    share (``shared_phones``), which depends on every pair and every record, not only on these."""
    size = PAIRS_AT_ONCE if size is None else size
    threads = COMPARE_THREADS
    names = [f.name for f in fields]
    phone = columns["phone"]
    per_value = np.append(phone.values.is_in(shared.implode()).to_numpy(), False) if "phone" in names else None
    patterns = np.empty(len(pairs), dtype=np.int32)
    no_link, strangers, same_person = (np.empty(len(pairs), dtype=bool) for _ in range(3))

    def one(at: slice, chunk: Pairs) -> None:
        sims: dict[str, np.ndarray] = {}
        lv = levels(columns, chunk, fields, sims)
        differ = names_differ(columns, chunk, sims)
        shared_phone = np.zeros(len(chunk), dtype=bool)
        if per_value is not None:
            shared_phone = per_value[phone.codes[chunk.left]] | per_value[phone.codes[chunk.right]]
        same_address = chunk.exact(columns["address"])
        # Two numbers at one company under one name are a person's mobile and direct line, unless both
        # are mobiles: asked only of those pairs.
        one_name_one_company = (
            (lv["phone"] == 0) & (lv["company"] >= 2) & ~differ["first"] & ~differ["last"]
            if "phone" in lv and "company" in lv
            else np.zeros(len(chunk), dtype=bool)
        )
        no_link[at], strangers[at] = _name_vetoes(
            lv,
            differ,
            shared_phone,
            _work_conflict(columns, chunk),
            same_address,
            learned,
            _two_mobiles(columns, chunk, one_name_one_company),
        )
        # The same address is the same person, unless it is a role mailbox colleagues share (info@) or a
        # mailbox that people of different first names share.
        same_person[at] = same_address & mailbox[chunk.left] & ~strangers[at]
        patterns[at] = pattern_codes(lv)

    # The chunks in threads (numpy and rapidfuzz let go of the GIL), each filling its own slice; no more
    # than ``size`` pairs are held at once.
    chunks = _chunks(pairs, max(1, min(-(-len(pairs) // threads), -(-size // threads))))
    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(one, at, chunk) for at, chunk in chunks]:
            done.result()
    return Compared(patterns, no_link, strangers, same_person)


def model_weights(
    model: Model,
    columns: dict[str, Column],
    left: np.ndarray,
    patterns: np.ndarray,
    names: Sequence[str],
    common: Common,
) -> np.ndarray:
    """Every pair's match weight by the model, its exact agreements on common values discounted (``left``:
    the position of each pair's left record in ``columns``, which is all the discount looks at). A pair's
    model weight is its pattern's: each distinct pattern is scored once."""
    kinds, _ = _patterns(patterns, names)
    by_pattern = np.zeros((LEVELS + 1) ** len(names), dtype=np.float64)
    by_pattern[kinds] = model.score(levels_of(kinds, names))
    weights = np.empty(len(patterns), dtype=np.float64)
    for start in range(0, len(patterns), PAIRS_AT_ONCE):
        at = slice(start, start + PAIRS_AT_ONCE)
        lv = levels_of(patterns[at], names)
        weights[at] = by_pattern[patterns[at]] + _frequency_adjustment(columns, left[at], lv, common)
    return weights


def _no_strangers() -> Iterator[Pairs]:
    return iter(())


@dataclass(frozen=True)
class Scored:
    """What scoring leaves of the candidate pairs for clustering and review (``settle``): the pairs, in
    order, at or above ``low`` (the review band's low end), their weights with the rules' verdicts
    applied, their agreement patterns, and whether a rule decided them; the model's ``threshold`` and
    prior log-odds of a match (``prior``); and, read a part at a time, the pairs of clear strangers
    (below ``STRANGERS``), which matter only where links put both records in one cluster."""

    pairs: Pairs
    weights: np.ndarray
    patterns: np.ndarray
    vetoed: np.ndarray
    threshold: float = 0.0
    low: float = 0.0
    prior: float = 0.0
    names: tuple[str, ...] = ()  # the fields of the patterns, in their order
    strangers: Callable[[], Iterator[Pairs]] = _no_strangers

    @staticmethod
    def none() -> Scored:
        empty = np.zeros(0, dtype=np.int64)
        return Scored(Pairs(empty, empty), np.zeros(0), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=bool))

    @staticmethod
    def by(
        model: Model,
        probability: float,
        kept: tuple[Pairs, np.ndarray, np.ndarray, np.ndarray],
        strangers: Callable[[], Iterator[Pairs]],
    ) -> Scored:
        """The ``kept`` pairs (pairs, weights, patterns, vetoed) and ``strangers`` that ``model`` weighed,
        with its threshold at ``probability``, the review band's low end, its prior and its fields."""
        prior = math.log2(model.match_share / (1 - model.match_share))
        band = (model.threshold(probability), model.threshold(REVIEW_FROM), prior)
        return Scored(*kept, *band, tuple(model.weights), strangers)


def settle(model: Model, probability: float, pairs: Pairs, weights: np.ndarray, compared: Compared) -> Scored:
    """The rules' verdicts applied to the model's ``weights`` of ``pairs`` (``compared``: their comparison):
    no link on the model's word alone, never clear strangers, always one person's own address; then only
    the pairs clustering or review can use are kept."""
    threshold = model.threshold(probability)
    np.minimum(weights, threshold - 1, out=weights, where=compared.no_link)
    weights[compared.strangers] = -np.inf
    weights[compared.same_person] = np.inf
    low = model.threshold(REVIEW_FROM)
    kept = np.flatnonzero(weights >= low)
    apart = np.flatnonzero(weights < STRANGERS)
    strangers = Pairs(pairs.left[apart], pairs.right[apart])
    vetoed = (compared.no_link | compared.strangers)[kept]  # a rule decided these, not the model's doubt
    chosen = (Pairs(pairs.left[kept], pairs.right[kept]), weights[kept], compared.patterns[kept], vetoed)
    return Scored.by(model, probability, chosen, lambda: iter((strangers,)))


def compared_fields(source: pl.LazyFrame) -> list[Field]:
    """The fields that hold a value in some record of the prepared records ``source``."""
    held = source.select(pl.len(), *(pl.col(f.name).null_count() for f in FIELDS)).collect(engine="streaming").row(0)
    return [f for f, nulls in zip(FIELDS, held[1:], strict=True) if nulls < held[0]]


def score(
    columns: dict[str, Column],
    pairs: Pairs,
    fields: Sequence[Field],
    mailbox: np.ndarray,
    common: Common,
    probability: float = MATCH_PROBABILITY,
) -> Scored:
    """Every candidate pair compared and weighed by a model learned from them (the default model for a
    file too small to learn from), in one process; ``settle``d."""
    if not (len(pairs) and fields):
        return Scored.none()
    names = [f.name for f in fields]
    n = len(mailbox)
    two_people = [two_people_phones(columns, pairs)] if "phone" in names else []
    learned = n >= MIN_TRAINING_RECORDS
    compared = compare(columns, pairs, fields, learned, mailbox, shared_phones(two_people, common))
    model = estimate(columns, n, compared.patterns, fields) if learned else default_model(fields)
    weights = model_weights(model, columns, pairs.left, compared.patterns, names, common)
    return settle(model, probability, pairs, weights, compared)


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Connected components of ``n`` nodes: every node gets the smallest node index of its component.
    Min-label propagation over all edges at once, with pointer jumping, in numpy."""
    labels = np.arange(n)
    if len(left) == 0:
        return labels
    while True:
        low = np.minimum(labels[left], labels[right])
        new = labels.copy()
        np.minimum.at(new, left, low)
        np.minimum.at(new, right, low)
        while True:  # a node takes its label's label until nothing moves
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, labels):
            return labels
        labels = new


def _constrained(nodes: set[int], edges: list[tuple[float, int, int]], cannot: dict[int, set[int]]) -> dict[int, int]:
    """Greedy agglomeration, strongest link first, that never puts two records known to be different
    people into one cluster."""
    members = {x: {x} for x in nodes}
    label = {x: x for x in nodes}
    for _, a, b in sorted(edges, reverse=True):
        la, lb = label[a], label[b]
        if la == lb:
            continue
        small, big = (la, lb) if len(members[la]) < len(members[lb]) else (lb, la)
        if any(cannot.get(x, set()) & members[big] for x in members[small]):
            continue
        for x in members[small]:
            label[x] = big
        members[big] |= members.pop(small)
    return {x: min(members[label[x]]) for x in nodes}


def cluster(
    n: int,
    pairs: Pairs,
    weights: np.ndarray,
    threshold: float,
    split: list[tuple[int, int]] | None = None,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """For each of ``n`` records, the position of the record that names its cluster: connected components
    of the pairs at or above ``threshold``. A component that holds a pair of clear strangers (a chain
    through an initial, "E. Forsberg" between Erik and Elin) is rebuilt strongest link first without
    ever joining the strangers; only those few components are handled one by one. ``split`` receives
    the pairs of strangers that had to be kept apart so. ``labels``: the components of the pairs at or
    above ``threshold`` when they are known already (rebuilt in place)."""
    left, right = pairs.left, pairs.right
    strong = np.flatnonzero(weights >= threshold)
    labels = components(n, left[strong], right[strong]) if labels is None else labels
    # (By index: a bool or a label per candidate pair is more than a million records can spare.)
    strangers = np.flatnonzero(weights < STRANGERS)
    strangers = strangers[labels[left[strangers]] == labels[right[strangers]]]
    if len(strangers):
        suspicious = distinct(labels[left[strangers]])
        cannot: dict[int, set[int]] = {}
        for a, b in zip(left[strangers].tolist(), right[strangers].tolist(), strict=True):
            cannot.setdefault(a, set()).add(b)
            cannot.setdefault(b, set()).add(a)
            if split is not None:
                split.append((a, b))
        inside = strong[np.isin(labels[left[strong]], suspicious)]
        edges: dict[int, list[tuple[float, int, int]]] = {}
        for lab, w, a, b in zip(
            labels[left[inside]].tolist(),
            weights[inside].tolist(),
            left[inside].tolist(),
            right[inside].tolist(),
            strict=True,
        ):
            edges.setdefault(lab, []).append((w, a, b))
        members = np.flatnonzero(np.isin(labels, suspicious))
        nodes: dict[int, set[int]] = {}
        for x, lab in zip(members.tolist(), labels[members].tolist(), strict=True):
            nodes.setdefault(lab, set()).add(x)
        for lab, component in nodes.items():
            for x, root in _constrained(component, edges.get(lab, []), cannot).items():
                labels[x] = root
    return labels


# Pairs whose posterior lies between these two go to the review list: the model leans neither way
# firmly enough to act on its own (it merges at MATCH_PROBABILITY).
REVIEW_FROM = 0.5
# At most this many unsure pairs are listed, the likeliest first: more than a person can look at (a file
# of a million records with few distinct names has hundreds of thousands); the manifest counts them all.
REVIEW_LIMIT = 10_000
REVIEW_COLUMNS = {
    "record_a": pl.String,
    "record_b": pl.String,
    "why": pl.String,
    "posterior": pl.Float64,
    "agreed": pl.String,
}


@dataclass(frozen=True)
class Review:
    """The review list (``pairs``: ``REVIEW_COLUMNS``), how many of a person's decisions concerned
    records of this input, how many of those went against what the model would have done, and how many
    unsure pairs there were in all."""

    pairs: pl.DataFrame
    decided: int = 0
    overridden: int = 0
    unsure: int = 0  # all unsure pairs, listed or beyond REVIEW_LIMIT


def assign_persons(
    contacts: pl.DataFrame, probability: float = MATCH_PROBABILITY, decisions: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Add ``person_key``: records with equal keys are one person. Records with the same address key
    are one person unless their first names clearly differ (a shared mailbox); the rest are matched by
    the model. ``decisions`` (``record_a, record_b, decision``: a person's ``link`` or ``unlink`` by
    record id) override the model."""
    return persons_and_review(contacts, probability, decisions)[0]


def persons_and_review(
    contacts: pl.DataFrame,
    probability: float = MATCH_PROBABILITY,
    decisions: pl.DataFrame | None = None,
    scored: Callable[[], Scored] | None = None,
    prepared: Callable[[], pl.DataFrame | pl.LazyFrame] | None = None,
) -> tuple[pl.DataFrame, Review]:
    """``assign_persons`` and the review list: ``record_a, record_b, why, posterior, agreed`` for the
    pairs the model is unsure about (posterior from ``REVIEW_FROM`` up to ``probability``, ``why`` =
    ``unsure``) and the pairs of clearly different people that had to be kept apart inside one chain
    (``why`` = ``split``); pairs a person decided are not listed again. ``scored`` reads the candidate
    pairs when tasks over partitions scored them already (``score``, with ``_row`` as positions: the
    records of ``prepared`` in the order of their ``_row`` 0, 1, …);
    ``prepared`` reads ``prepare(contacts)`` when the partitions prepared it already (``contacts`` then
    need hold only ``_row`` and ``record_id``): a frame whose text is let go of once coded, or a scan of
    the partitions' files, of which only a few columns are then read."""
    review = pl.DataFrame(schema=REVIEW_COLUMNS)
    if contacts.height == 0:
        empty = contacts.with_columns(pl.lit(False).alias("owns_mailbox"), pl.lit(None, pl.String).alias("person_key"))
        return empty, Review(review)
    source = (prepare(contacts) if prepared is None else prepared()).lazy()
    # (In one piece: ``owner`` becomes a column of the records.)
    p = source.select("_row", "owner", pl.col("mailbox").is_not_null()).collect(engine="streaming").rechunk()
    rows = p["_row"].to_numpy()
    if scored is None:
        fields = compared_fields(source)
        pairs = candidate_pairs(source.collect())
        compared_at_all = bool(fields and len(pairs))
        names = [f.name for f in fields]
        columns = code_columns(source) if compared_at_all else {}
        common = common_facts(source, names) if compared_at_all else Common(pl.Series([], dtype=pl.String), {})
        del source  # the text is in ``columns`` now
        result = score(columns, pairs, fields, p["mailbox"].to_numpy(), common, probability)
        del columns, pairs
    else:
        del source
        if not np.array_equal(rows, np.arange(len(rows))):
            raise ValueError("the partitions' records must be in the order of their _row, 0, 1, …")
        result = scored()
    pairs, weights, threshold = result.pairs, result.weights, result.threshold
    ids = contacts["record_id"] if "record_id" in contacts.columns else None
    decided = np.zeros(len(pairs), dtype=bool)
    overridden = 0
    if decisions is not None and decisions.height and ids is not None:
        pairs, weights, decided, overridden = _decided(pairs, weights, ids, decisions, threshold)
    # Of the clear strangers only those whom links put in one cluster, and no pair a person decided.
    strong = np.flatnonzero(weights >= threshold)
    labels = components(p.height, pairs.left[strong], pairs.right[strong])
    del strong
    taken = distinct(pairs.left[decided].astype(np.int64) * p.height + pairs.right[decided])
    lefts, rights = [pairs.left], [pairs.right]
    for part in result.strangers():
        inside = labels[part.left] == labels[part.right]
        inside[inside] = ~np.isin(part.left[inside].astype(np.int64) * p.height + part.right[inside], taken)
        lefts.append(part.left[inside])
        rights.append(part.right[inside])
    apart = sum(len(a) for a in lefts) - len(pairs)
    pairs = Pairs(np.concatenate(lefts), np.concatenate(rights))
    weights = np.append(weights, np.full(apart, -np.inf))
    decided = np.append(decided, np.zeros(apart, dtype=bool))
    split: list[tuple[int, int]] = []
    # ``p`` holds the records in the order of ``contacts``: each record's cluster is named by a row.
    clusters = cluster(p.height, pairs, weights, threshold, split, labels)
    named = pl.Series("_cluster", rows[clusters], dtype=pl.Int64)
    unsure = 0
    if ids is not None and len(weights):
        settled = decided.copy()  # not for review: decided by a person (pairs it added too) or by a rule
        settled[: len(result.vetoed)] |= result.vetoed
        band = (result.low, threshold, result.prior)
        review, unsure = _review(pairs, weights, settled, (result.patterns, result.names), band, split, ids)
    persons = (
        contacts.with_columns(named, p["owner"].alias("owns_mailbox"))
        .with_columns(pl.format("person:{}", pl.col("_cluster")).alias("person_key"))
        .drop("_cluster")
    )
    return persons, Review(review, int(decided.sum()), overridden, unsure)


def _decided(
    pairs: Pairs, weights: np.ndarray, ids: pl.Series, decisions: pl.DataFrame, threshold: float
) -> tuple[Pairs, np.ndarray, np.ndarray, int]:
    """The pairs and weights with a person's decisions applied: a link joins two records whatever the
    model says, an unlink keeps them apart whatever else links them. Pairs the model never compared
    are added. Also returns which pairs were decided and how many decisions overrode the model's own
    (a link of a pair below ``threshold`` or never compared, an unlink of a pair at or above it)."""
    position = pl.DataFrame({"record_id": ids}).with_row_index("i").unique("record_id", keep="first")
    found = (
        decisions.join(position.rename({"record_id": "record_a", "i": "a"}), on="record_a")
        .join(position.rename({"record_id": "record_b", "i": "b"}), on="record_b")
        .select(
            pl.min_horizontal("a", "b").cast(pl.Int64).alias("l"),
            pl.max_horizontal("a", "b").cast(pl.Int64).alias("r"),
            pl.col("decision"),
        )
        .filter(pl.col("l") != pl.col("r"))
    )
    decided = np.zeros(len(pairs), dtype=bool)
    if found.height == 0:
        return pairs, weights, decided, 0
    width = len(ids)
    existing = pairs.left.astype(np.int64) * width + pairs.right
    wanted = found["l"].to_numpy() * width + found["r"].to_numpy()
    verdict = np.where(found["decision"].to_numpy() == "link", np.inf, -np.inf)
    at = np.searchsorted(existing, wanted)
    known = (at < len(existing)) & (existing[np.minimum(at, len(existing) - 1)] == wanted)
    link = verdict > 0
    overridden = int(((weights[at[known]] >= threshold) != link[known]).sum()) + int((link & ~known).sum())
    weights = weights.copy()
    weights[at[known]] = verdict[known]
    decided[at[known]] = True
    new = ~known
    pairs = Pairs(np.append(pairs.left, found["l"].to_numpy()[new]), np.append(pairs.right, found["r"].to_numpy()[new]))
    decided = np.append(decided, np.ones(int(new.sum()), dtype=bool))
    return pairs, np.append(weights, verdict[new]), decided, overridden


def _review(
    pairs: Pairs,
    weights: np.ndarray,
    settled: np.ndarray,
    compared: tuple[np.ndarray, Sequence[str]],
    band: tuple[float, float, float],
    split: list[tuple[int, int]],
    ids: pl.Series,
) -> tuple[pl.DataFrame, int]:
    """The review list (at most ``REVIEW_LIMIT`` unsure pairs, the likeliest first, then the pairs kept
    apart) and how many unsure pairs there were in all."""
    low, threshold, prior = band  # weights from, up to, and the prior log-odds of a match
    patterns, names = compared  # of the pairs the model scored (the first; a person's decisions add pairs)
    scored = len(patterns)
    at = np.flatnonzero((weights[:scored] >= low) & (weights[:scored] < threshold) & ~settled[:scored])
    if split:
        kept_apart = np.array([(min(a, b), max(a, b)) for a, b in split], dtype=np.int64)
        split_keys = distinct(kept_apart[:, 0] * len(ids) + kept_apart[:, 1])
        keys = pairs.left[at].astype(np.int64) * len(ids) + pairs.right[at]
        at = at[~np.isin(keys, split_keys)]
    else:
        kept_apart = np.zeros((0, 2), dtype=np.int64)
    posterior = np.round(1.0 / (1.0 + np.exp2(-(weights[at] + prior))), 3)
    pending = len(at)
    if pending > REVIEW_LIMIT:  # only pairs that can be among the first REVIEW_LIMIT are written out
        cut = np.partition(posterior, pending - REVIEW_LIMIT)[pending - REVIEW_LIMIT]
        listed = posterior >= cut
        at, posterior = at[listed], posterior[listed]
    lv = levels_of(patterns[at], names)
    agreed = pl.DataFrame({name: lv[name] >= 2 for name in lv}).select(
        pl.concat_str([pl.when(pl.col(name)).then(pl.lit(name)) for name in lv], separator=";", ignore_nulls=True)
    )
    unsure_rows = pl.DataFrame(
        {
            "record_a": ids.gather(pairs.left[at]),
            "record_b": ids.gather(pairs.right[at]),
            "why": np.full(len(at), "unsure"),
            "posterior": posterior,
            "agreed": agreed.to_series() if len(at) else pl.Series([], dtype=pl.String),
        },
        schema=REVIEW_COLUMNS,
    ).sort("posterior", "record_a", "record_b", descending=[True, False, False])
    split_rows = pl.DataFrame(
        {
            "record_a": ids.gather(kept_apart[:, 0]),
            "record_b": ids.gather(kept_apart[:, 1]),
            "why": np.full(len(kept_apart), "split"),
            "posterior": np.zeros(len(kept_apart)),
            "agreed": np.full(len(kept_apart), ""),
        },
        schema=REVIEW_COLUMNS,
    ).unique(maintain_order=True)
    return pl.concat([unsure_rows.head(REVIEW_LIMIT), split_rows]), pending
