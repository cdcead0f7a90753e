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

``assign_persons`` adds ``person_key`` (the cluster) to every record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, JaroWinkler, Levenshtein

from .providers import FREE_MAIL_DOMAINS, ROLE_LOCAL_PARTS

MAX_BLOCK = 30
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


def prepare(contacts: pl.DataFrame) -> pl.DataFrame:
    """The comparable fields of every record, keyed by ``_row``."""
    contacts = _with_folded(contacts)

    def folded(name: str) -> pl.Expr:
        return _column(contacts, f"__f_{name}")

    full = folded("full_name")
    comma = _column(contacts, "full_name").str.contains(",")
    full_first = pl.when(comma).then(full.str.extract(r"^\S+\s+(.*)$")).otherwise(full.str.extract(r"^(\S+)"))
    full_last = pl.when(comma).then(full.str.extract(r"^(\S+)")).otherwise(full.str.extract(r"\s(\S+)$"))
    local = _column(contacts, "address_key").str.extract(r"^([^@+]*)")
    domain = _column(contacts, "address_key").str.extract(r"@(.*)$")
    role = local.str.replace_all(r"[._-]", "").is_in(list(ROLE_LOCAL_PARTS)).fill_null(False)
    return contacts.select(
        pl.col("_row"),
        pl.coalesce(folded("first_name"), full_first).alias("first"),
        pl.coalesce(folded("last_name"), full_last).alias("last"),
        folded("street").alias("street"),
        folded("street2").alias("street2"),
        folded("city").alias("city"),
        _column(contacts, "postcode").str.replace_all(r"\s", "").replace("", None).alias("postcode"),
        folded("region").alias("region"),
        folded("company").str.replace(r"\s(ab|aktiebolag|inc|ltd|llc|gmbh|as|oy)$", "").alias("company"),
        _column(contacts, "phone_e164").alias("phone"),
        pl.when(role).then(None).otherwise(local.str.replace_all(r"[._-]", "")).alias("local"),
        _column(contacts, "address_key").alias("address"),
        # A work address's domain: two different addresses at one company are two people.
        pl.when(~domain.is_in(list(FREE_MAIL_DOMAINS)) & ~role).then(domain).alias("workdomain"),
    ).with_columns(
        pl.col("first").str.extract(r"^(\S+)").replace(NICKNAMES).alias("first_canon"),
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
        pl.col("local"),
        pl.concat_str([pl.col("company"), l3, f1]),
        pl.col("address"),
    ]


def candidate_pairs(p: pl.DataFrame, max_block: int = MAX_BLOCK) -> pl.DataFrame:
    """Pairs ``(l, r)`` with ``l < r`` that share at least one blocking key."""
    frames = []
    for i, key in enumerate(_blocking_keys(p)):
        # Coarse keys get a smaller block limit: in a big file their blocks fill up with namesakes,
        # neighbours and colleagues at one switchboard.
        limit = max_block // 5 if i in COARSE_KEYS else max_block
        keyed = p.select(pl.col("_row"), key.alias("k")).drop_nulls("k")
        keyed = keyed.filter(pl.len().over("k").is_between(2, limit))
        if keyed.height == 0:
            continue
        pairs = keyed.join(keyed, on="k", suffix="_r").filter(pl.col("_row") < pl.col("_row_r"))
        frames.append(pairs.select(pl.col("_row").alias("l"), pl.col("_row_r").alias("r")))
    if not frames:
        return pl.DataFrame(schema={"l": pl.Int64, "r": pl.Int64})
    # In order: the model trains on a sample of the pairs, which must not depend on hashing order.
    return pl.concat(frames).unique().sort("l", "r")


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


def _sim(frame: pl.DataFrame, a: str, b: str, scorer: Any, distinct: bool = True) -> np.ndarray:
    """``scorer`` over the rows' two columns, in parallel by rapidfuzz; null counts as the empty string.
    With ``distinct`` it is computed once per distinct pair of values (names repeat a lot); values that
    rarely repeat (streets, email local parts) are scored directly."""
    pairs = frame.select(pl.col(a).fill_null("").alias("a"), pl.col(b).fill_null("").alias("b"))
    if not distinct:
        direct = process.cpdist(pairs["a"].to_list(), pairs["b"].to_list(), scorer=scorer, workers=-1)
        return np.asarray(direct, dtype=np.float32)
    values = pairs.unique()
    scores = process.cpdist(values["a"].to_list(), values["b"].to_list(), scorer=scorer, workers=-1)
    table = values.with_columns(pl.Series("s", np.asarray(scores, dtype=np.float32)))
    return pairs.join(table, on=["a", "b"], how="left", maintain_order="left")["s"].to_numpy()


def _joined(p: pl.DataFrame, pairs: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    side = p.select("_row", *columns)
    return pairs.join(side, left_on="l", right_on="_row", how="left", maintain_order="left").join(
        side, left_on="r", right_on="_row", suffix="_r", how="left", maintain_order="left"
    )


def _np(frame: pl.DataFrame, expr: pl.Expr) -> np.ndarray:
    return frame.select(expr.fill_null(False)).to_series().to_numpy()


def levels(
    p: pl.DataFrame, pairs: pl.DataFrame, fields: Sequence[Field], sims: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Agreement level per field per pair: -1 missing, 0 disagree, 1 weak, 2 strong, 3 exact. The raw
    name similarities go into ``sims`` for the name vetoes."""
    sims = {} if sims is None else sims
    joined = _joined(p, pairs, [*[f.name for f in fields], "first_canon"])
    out: dict[str, np.ndarray] = {}
    for f in fields:
        a, b = pl.col(f.name), pl.col(f"{f.name}_r")
        missing = _np(joined, a.is_null() | b.is_null())
        exact = _np(joined, a == b)
        level = np.zeros(joined.height, dtype=np.int8)
        if f.kind in ("first", "name", "place", "handle"):
            jw = _sim(joined, f.name, f"{f.name}_r", JaroWinkler.normalized_similarity, f.kind != "handle")
            sims[f"{f.name}_jw"] = jw
            weak, strong = JW_LEVELS[f.kind]
            level[jw >= weak] = 1
            level[jw >= strong] = 2
            if f.kind in ("first", "name"):
                # One typo (a letter dropped, swapped or wrong) in a name of four letters or more.
                long_enough = _np(joined, pl.min_horizontal(a.str.len_chars(), b.str.len_chars()) >= 4)
                osa = _sim(joined, f.name, f"{f.name}_r", OSA.distance)
                sims[f"{f.name}_osa"] = osa
                typo = (osa <= 1) & long_enough
                level[typo & (level < 1)] = 1
            if f.kind == "first":
                canon = _np(joined, pl.col("first_canon") == pl.col("first_canon_r"))
                abbreviated = _np(joined, (a.str.len_chars() == 1) | (b.str.len_chars() == 1))
                initial = abbreviated & _np(joined, a.str.slice(0, 1) == b.str.slice(0, 1))
                level[canon & ~exact] = np.maximum(level[canon & ~exact], 2)
                # An initial is never more than a weak agreement, even with the same initial.
                level[abbreviated] = np.where(initial[abbreviated], 1, 0)
                exact = exact & ~abbreviated
        elif f.kind == "text":
            ratio = _sim(joined, f.name, f"{f.name}_r", fuzz.token_sort_ratio, distinct=False) / 100
            level[ratio >= 0.65] = 1
            level[ratio >= 0.85] = 2
            # "Vasagatan 11" and "Vasagatan 31" are different buildings however alike they look.
            na = a.str.replace_all(r"\D+", " ").str.strip_chars()
            nb = b.str.replace_all(r"\D+", " ").str.strip_chars()
            level[_np(joined, (na != "") & (nb != "") & (na != nb))] = 0
        elif f.kind == "code":
            level[_sim(joined, f.name, f"{f.name}_r", Levenshtein.distance, distinct=False) <= 1] = 1
        level[exact] = 3
        level[missing] = -1
        out[f.name] = level
    # Swapped first and last names count as agreeing names.
    if "first" in out and "last" in out:
        sims["first_last_jw"] = _sim(joined, "first", "last_r", JaroWinkler.normalized_similarity)
        sims["last_first_jw"] = _sim(joined, "last", "first_r", JaroWinkler.normalized_similarity)
        swap = (sims["first_last_jw"] >= SWAP) & (sims["last_first_jw"] >= SWAP)
        for name in ("first", "last"):
            out[name] = np.where(swap & (out[name] < 2), 2, out[name]).astype(np.int8)
    return out


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
        return np.where(level >= 0, self.weights[name][np.clip(level, 0, LEVELS - 1)], 0.0)

    def threshold(self, probability: float) -> float:
        """The match weight at which a pair's posterior match probability reaches ``probability``."""
        prior_log_odds = math.log2(self.match_share / (1 - self.match_share))
        return math.log2(probability / (1 - probability)) - prior_log_odds


def _distribution(level: np.ndarray, mask: np.ndarray) -> np.ndarray:
    chosen = level[mask & (level >= 0)]
    counts = np.bincount(chosen, minlength=LEVELS).astype(np.float64) + 0.5
    share: np.ndarray = counts / counts.sum()
    return share


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


def estimate(
    p: pl.DataFrame, pairs: pl.DataFrame, lv: dict[str, np.ndarray], fields: Sequence[Field], seed: int = 7
) -> Model:
    """u from random pairs. m per field from the candidate pairs that the *other* fields already call
    near-certain matches (so a field never trains on itself), refined a few times. The match share of
    all pairs from the posterior of the candidate pairs."""
    n = p.height
    rng = np.random.default_rng(seed)
    k = min(RANDOM_PAIRS, max(n * 4, 1000))
    left = rng.integers(0, n, k)
    right = rng.integers(0, n, k)
    keep = left != right
    rows = p["_row"].to_numpy()
    random_lv = levels(p, pl.DataFrame({"l": rows[left[keep]], "r": rows[right[keep]]}), fields)
    u = {name: _distribution(level, np.ones(len(level), dtype=bool)) for name, level in random_lv.items()}
    m = {name: np.array([0.02, 0.05, 0.15, 0.78]) for name in lv}
    count = len(next(iter(lv.values())))
    sample = rng.choice(count, size=TRAINING_PAIRS, replace=False) if count > TRAINING_PAIRS else slice(None)
    train = {name: level[sample] for name, level in lv.items()}
    for _ in range(TRAINING_ROUNDS):
        model = Model({name: np.log2(m[name] / u[name]) for name in lv}, PRIOR)
        total = model.score(train)
        for name, level in train.items():
            others = total - model._part(name, level)
            m[name] = _distribution(level, others >= CERTAIN)
    model = Model({name: np.log2(m[name] / u[name]) for name in lv}, PRIOR)
    weights = model.score(lv)
    all_pairs = n * (n - 1) / 2
    share = PRIOR
    for _ in range(50):  # fixed point: the share is the expected matches among all pairs
        odds = np.exp2(np.clip(weights + math.log2(share / (1 - share)), -60, 60))
        share = float(np.clip((odds / (1 + odds)).sum() / all_pairs, 1e-12, 0.5))
    model.match_share = share
    return model


def names_differ(p: pl.DataFrame, pairs: pl.DataFrame, sims: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per pair, whether the first names and the last names are clearly different: not similar, not one
    typo apart, not swapped, not an initial or nickname of each other; a missing name never differs.
    ``sims`` holds the similarities ``levels`` computed."""
    j = _joined(p, pairs, ["first", "last", "first_canon"])

    def differ(a: str, b: str, jw: np.ndarray | None, osa: np.ndarray | None) -> np.ndarray:
        jw = _sim(j, a, b, JaroWinkler.normalized_similarity) if jw is None else jw
        osa = _sim(j, a, b, OSA.distance) if osa is None else osa
        far = (jw < DIFFERENT_NAMES) & (osa > 1)
        present = _np(j, pl.col(a).is_not_null() & pl.col(b).is_not_null())
        initial = _np(
            j,
            ((pl.col(a).str.len_chars() == 1) | (pl.col(b).str.len_chars() == 1))
            & (pl.col(a).str.slice(0, 1) == pl.col(b).str.slice(0, 1)),
        )
        different: np.ndarray = far & present & ~initial
        return different

    nickname = _np(j, pl.col("first_canon") == pl.col("first_canon_r"))
    long_names = _np(j, (pl.col("first").str.len_chars() > 1) & (pl.col("last_r").str.len_chars() > 1))
    swapped = (
        ~differ("first", "last_r", sims.get("first_last_jw"), None)
        & ~differ("last", "first_r", sims.get("last_first_jw"), None)
        & long_names
    )
    first = differ("first", "first_r", sims.get("first_jw"), sims.get("first_osa"))
    last = differ("last", "last_r", sims.get("last_jw"), sims.get("last_osa"))
    return {"first": first & ~nickname & ~swapped, "last": last & ~swapped}


def _work_conflict(p: pl.DataFrame, pairs: pl.DataFrame) -> np.ndarray:
    """Both records have an address at the same company domain, and the addresses differ."""
    j = _joined(p, pairs, ["workdomain", "address"])
    return _np(j, (pl.col("workdomain") == pl.col("workdomain_r")) & (pl.col("address") != pl.col("address_r")))


def _name_vetoes(
    lv: dict[str, np.ndarray], differ: dict[str, np.ndarray], shared_phone: np.ndarray, work_conflict: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Different names veto a match however much else agrees. Returns ``(no_link, strangers)``:
    both names different (and not swapped) is never a link on its own; one name different when the
    pair shares nothing but what colleagues share (a company, its street and switchboard) and no
    personal identifier (the email's local part, a phone nobody else has) marks two different people,
    whom no chain of other links may join. A missing name neither vetoes nor helps."""
    n = len(next(iter(lv.values())))
    missing = np.full(n, -1, dtype=np.int8)
    company, local, phone = lv.get("company", missing), lv.get("local", missing), lv.get("phone", missing)
    first_differs, last_differs = differ["first"], differ["last"]
    street = lv.get("street", missing)
    personal = (local == 3) | ((phone == 3) & ~shared_phone)
    one_name_differs = first_differs | last_differs
    colleagues = (company >= 2) & ~personal & one_name_differs
    # Where the input has companies, a shared street is most likely a shared workplace.
    same_building = (street >= 2) & ~personal & one_name_differs & ("company" in lv)
    # Two personal phones (numbers nobody else has) that differ, or two addresses at one company's
    # domain: two people.
    phone_conflict = (phone == 0) & ~shared_phone & (local != 3)
    colleagues = colleagues | phone_conflict | work_conflict
    # In an export with only names and addresses the address is the person's own, and the model's weights
    # decide; where contacts carry companies, phones or emails, two different names are two people.
    contact_data = bool({"company", "phone", "local"} & set(lv))
    both_differ = first_differs & last_differs & contact_data
    return both_differ | same_building, colleagues


TERM_FREQUENCY_FIELDS = ("phone", "last", "company", "street")


def _frequency_adjustment(
    p: pl.DataFrame, pairs: pl.DataFrame, lv: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """An exact agreement on a common value (a switchboard number, "Andersson") is worth less than on
    a rare one: the weight's u becomes the value's own frequency instead of the field's average.
    Also returns, per pair, whether its phone is one several records share."""
    adjust = np.zeros(len(pairs), dtype=np.float64)
    shared_phone = np.zeros(len(pairs), dtype=bool)
    for name in TERM_FREQUENCY_FIELDS:
        if name not in lv:
            continue
        freq = p.group_by(name).len().drop_nulls(name)
        values = pairs.join(
            p.select("_row", name), left_on="l", right_on="_row", how="left", maintain_order="left"
        ).join(freq, on=name, how="left", maintain_order="left")
        count = values["len"].fill_null(1).to_numpy().astype(np.float64)
        exact = lv[name] == 3
        average = float((freq["len"].cast(pl.Float64) ** 2).sum()) / max(float(freq["len"].sum()), 1.0)
        adjust += np.where(exact, np.minimum(np.log2(average / count), 0.0), 0.0)
    if "phone" in lv:
        # A number that records of different surnames carry is a switchboard, not a person's.
        shared = (
            p.group_by("phone")
            .agg(pl.col("last").n_unique().alias("_names"))
            .drop_nulls("phone")
            .filter(pl.col("_names") > 1)
            .select("phone", pl.lit(True).alias("_shared"))
        )
        phones = p.select("_row", "phone").join(shared, on="phone", how="left")
        for end in ("l", "r"):
            flag = pairs.join(phones, left_on=end, right_on="_row", how="left", maintain_order="left")["_shared"]
            shared_phone |= flag.fill_null(False).to_numpy()
    return adjust, shared_phone


def _components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
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


def cluster(rows: np.ndarray, pairs: pl.DataFrame, weights: np.ndarray, threshold: float) -> np.ndarray:
    """For each of ``rows``, the row that names its cluster: connected components of the pairs at or
    above ``threshold``. A component that holds a pair of clear strangers (a chain through an
    initial, "E. Forsberg" between Erik and Elin) is rebuilt strongest link first without ever
    joining the strangers; only those few components are handled one by one."""
    order = np.argsort(rows)
    sorted_rows = rows[order]
    left = order[np.searchsorted(sorted_rows, pairs["l"].to_numpy())]
    right = order[np.searchsorted(sorted_rows, pairs["r"].to_numpy())]
    strong = weights >= threshold
    labels = _components(len(rows), left[strong], right[strong])
    strangers = (weights < STRANGERS) & (labels[left] == labels[right])
    if strangers.any():
        suspicious = np.unique(labels[left[strangers]])
        cannot: dict[int, set[int]] = {}
        for a, b in zip(left[strangers].tolist(), right[strangers].tolist(), strict=True):
            cannot.setdefault(a, set()).add(b)
            cannot.setdefault(b, set()).add(a)
        inside = strong & np.isin(labels[left], suspicious)
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
    named: np.ndarray = rows[labels]
    return named


def assign_persons(contacts: pl.DataFrame, probability: float = MATCH_PROBABILITY) -> pl.DataFrame:
    """Add ``person_key``: records with equal keys are one person. Records with the same address key
    are always one person; the rest are matched by the model."""
    if contacts.height == 0:
        return contacts.with_columns(pl.lit(None, pl.String).alias("person_key"))
    p = prepare(contacts)
    fields = [f for f in FIELDS if p[f.name].null_count() < p.height]
    pairs = candidate_pairs(p)
    if pairs.height and fields:
        sims: dict[str, np.ndarray] = {}
        lv = levels(p, pairs, fields, sims)
        model = estimate(p, pairs, lv, fields) if p.height >= MIN_TRAINING_RECORDS else default_model(fields)
        adjust, shared_phone = _frequency_adjustment(p, pairs, lv)
        weights = model.score(lv) + adjust
        threshold = model.threshold(probability)
        no_link, strangers = _name_vetoes(lv, names_differ(p, pairs, sims), shared_phone, _work_conflict(p, pairs))
        weights = np.where(no_link, np.minimum(weights, threshold - 1), weights)
        weights = np.where(strangers, -np.inf, weights)
        address = p.select("_row", "address")
        ends = pairs.join(address, left_on="l", right_on="_row", how="left", maintain_order="left").join(
            address, left_on="r", right_on="_row", how="left", maintain_order="left", suffix="_r"
        )
        # The same address is the same person, unless it is a role mailbox colleagues share (info@).
        local = p.select("_row", "local")
        roles = pairs.join(local, left_on="l", right_on="_row", how="left", maintain_order="left")["local"]
        forced = ((ends["address"] == ends["address_r"]) & roles.is_not_null()).fill_null(False).to_numpy()
        weights = np.where(forced, np.inf, weights)
    else:
        weights, threshold = np.zeros(0), 0.0
    rows = p["_row"].to_numpy()
    keys = pl.DataFrame(
        {"_row": rows, "_cluster": cluster(rows, pairs, weights, threshold)},
        schema={"_row": pl.Int64, "_cluster": pl.Int64},
    )
    return (
        contacts.join(keys, on="_row", how="left")
        .with_columns(pl.format("person:{}", pl.col("_cluster")).alias("person_key"))
        .drop("_cluster")
    )
