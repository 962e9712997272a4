"""Benchmark data: realistic networks, a 1,000,000-prefix deck, and CDR batches.

* :func:`network` writes a synthetic VMGate network with :func:`pipeline.synthetic.write_network`
  (nested E.164 prefixes, effective dating, every malformed kind at the given ratio).
* :func:`big_deck_network` writes a plans folder (DESIGN.md section 4 format) whose customer
  deck holds ``prefixes`` distinct prefixes (1,000,000 by default) under ~200 real country
  codes, nested (country, area, exchange, block), about 3% of them with a rate change inside
  the month (two rows); plus smaller client and reseller decks, associations, memberships and
  clean CDRs whose callees fall under the big deck's prefixes. Built column-wise (numpy and
  polars), a million rows take a few seconds.
* :func:`read_lines` and :func:`renumbered` give message batches (``list[bytes]``) the way the
  Kafka source hands them to the rater.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.synthetic import NetworkSpec, write_network

#: The realistic network of the benchmarks: 15 plans of ~4,000 prefixes (60,000 prefixes in the
#: index, ~69,000 deck rows), 2 tenants, some resellers, the synthetic generator's CDR mix.
PREFIXES_PER_PLAN = 4000

# E.164 country codes with the national number length used to fill callees.
_CODES = """
1:10 7:10 20:10 27:9 30:10 31:9 32:9 33:9 34:9 36:9 39:10 40:9 41:9 43:10 44:10 45:8 46:9
47:8 48:9 49:11 51:9 52:10 53:8 54:10 55:11 56:9 57:10 58:10 60:9 61:9 62:10 63:10 64:9 65:8
66:9 81:10 82:10 84:9 86:11 90:10 91:10 92:10 93:9 94:9 95:9 98:10 211:9 212:9 213:9 216:8
218:9 220:7 221:9 222:8 223:8 224:9 225:10 226:8 227:8 228:8 229:8 230:8 231:9 232:8 233:9
234:10 235:8 236:8 237:9 238:7 239:7 240:9 241:8 242:9 243:9 244:9 245:7 246:7 248:7 249:9
250:9 251:9 252:8 253:8 254:9 255:9 256:9 257:8 258:9 260:9 261:9 262:9 263:9 264:9 265:9
266:8 267:8 268:8 269:7 290:5 291:7 297:7 298:6 299:6 350:8 351:9 352:9 353:9 354:7 355:9
356:8 357:8 358:9 359:9 370:8 371:8 372:8 373:8 374:8 375:9 376:6 377:8 378:10 380:9 381:9
382:8 383:8 385:9 386:8 387:8 389:8 420:9 421:9 423:7 500:5 501:7 502:8 503:8 504:8 505:8
506:8 507:8 508:6 509:8 590:9 591:8 592:7 593:9 594:9 595:9 596:9 597:7 598:8 599:7 670:8
672:6 673:7 674:7 675:8 676:5 677:7 678:7 679:7 680:7 681:6 682:5 683:4 685:7 686:8 687:6
688:5 689:6 690:4 691:7 692:7 850:10 852:8 853:8 855:9 856:9 880:10 886:9 960:7 961:8 962:9
963:9 964:10 965:8 966:9 967:9 968:8 970:9 971:9 972:9 973:8 974:8 975:8 976:8 977:10 992:9
993:8 994:9 995:9 996:9 998:9
"""
_INCREMENTS = (("1", "1"), ("60", "60"), ("30", "6"), ("60", "1"), ("6", "6"), ("", ""))
_MONTH_START_US = 1_772_323_200_000_000  # 2026-03-01T00:00:00Z
_MONTH_US = 31 * 86_400 * 1_000_000
_CHANGE_AT = "2026-03-15T00:00:00Z"
_DECK_FROM = "2025-01-01T00:00:00Z"


def _codes() -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for item in _CODES.split():
        cc, length = item.split(":")
        out.append((cc, int(length)))
    return out


@dataclass(frozen=True)
class Network:
    """Where a network was written and what it holds."""

    plans: Path
    cdrs: Path
    cdr_count: int
    malformed: int
    prefixes: int


def network(
    root: Path, cdrs: int, malformed_ratio: float, seed: int = 7, *, tariff_v2: bool = False
) -> Network:
    """A synthetic network (same reference data for one seed, whatever the CDR count).

    ``tariff_v2``: its plans use zones, time bands, holidays, origins and the price shape
    (DESIGN.md section 8); the CDRs are the same bytes as without.
    """
    spec = NetworkSpec(
        seed=seed,
        cdrs=cdrs,
        prefixes_per_plan=PREFIXES_PER_PLAN,
        malformed_ratio=malformed_ratio,
        price_shape=tariff_v2,
        origins_and_bands=tariff_v2,
    )
    summary = write_network(spec, root / "plans", root / "cdrs.jsonl")
    return Network(
        root / "plans",
        root / "cdrs.jsonl",
        cdrs,
        len(summary.malformed_lines),
        spec.plans * spec.prefixes_per_plan,
    )


def read_lines(path: Path, limit: int | None = None) -> list[bytes]:
    """The file's non-blank lines as messages (what the Kafka source hands the rater)."""
    lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
    return lines[:limit] if limit is not None else lines


_ID_FIELD = b'"cdr_id": "'


def renumbered(lines: list[bytes], count: int, tag: str) -> tuple[list[bytes], list[bytes]]:
    """``count`` messages cycling through ``lines``, each with cdr_id ``<tag><9-digit seq>``.

    Returns (messages, keys). The ids sort in send order, so a store can be polled for every
    id at or above a watermark through the primary key.
    """
    messages: list[bytes] = []
    keys: list[bytes] = []
    heads: list[tuple[bytes, bytes]] = []
    for line in lines:
        start = line.index(_ID_FIELD) + len(_ID_FIELD)
        end = line.index(b'"', start)
        heads.append((line[:start], line[end:]))
    prefix = tag.encode()
    for seq in range(count):
        before, after = heads[seq % len(heads)]
        key = prefix + b"%09d" % seq
        keys.append(key)
        messages.append(before + key + after)
    return messages, keys


# --- the 1,000,000-prefix deck ------------------------------------------------------------------


def _prefixes(rng: np.random.Generator, count: int) -> pl.DataFrame:
    """``count`` distinct prefixes: country code + 0..9 more digits, nested, with a country."""
    codes = _codes()
    cc = pl.Series([c for c, _ in codes])
    national = np.array([n for _, n in codes], dtype=np.int64)
    # Draw more than needed, de-duplicate, keep ``count``. Lengths after the country code
    # cluster around 3-6 digits (area, exchange, block), like carrier A-Z decks.
    draw = int(count * 1.5) + 10_000
    which = rng.integers(0, len(codes), draw)
    cc_len = cc.str.len_bytes().to_numpy()[which].astype(np.int64)
    room = np.minimum(15 - cc_len, national[which] - 1)
    extra = np.minimum(np.maximum(rng.binomial(9, 0.5, draw), 1), room)
    value = (rng.random(draw) * 10.0**extra).astype(np.int64)
    frame = (
        pl.DataFrame({"which": which, "extra": extra, "value": value})
        .select(
            which=pl.col("which"),
            prefix=pl.concat_str(
                pl.lit(cc).gather(pl.col("which")),
                pl.col("value").cast(pl.String).str.zfill(pl.col("extra")),
            ),
        )
        .unique("prefix", keep="first", maintain_order=True)
    )
    roots = pl.DataFrame({"which": np.arange(len(codes)), "prefix": cc})
    frame = pl.concat([roots, frame.filter(~pl.col("prefix").is_in(cc.implode()))]).head(count)
    if frame.height < count:  # pragma: no cover - the draw is 1.5x the count
        msg = f"could only draw {frame.height} distinct prefixes"
        raise RuntimeError(msg)
    return frame


def _deck_frame(rng: np.random.Generator, prefixes: pl.DataFrame, scale: float) -> pl.DataFrame:
    """Deck rows for ``prefixes``; ~3% get a second row from the change instant on."""
    n = prefixes.height
    rate_micros = (rng.lognormal(10.0, 1.0, n) * scale).astype(np.int64) + 1
    increments = rng.integers(0, len(_INCREMENTS), n)
    changed = rng.random(n) < 0.03
    first = prefixes.select(
        prefix=pl.col("prefix"),
        destination=pl.concat_str(
            pl.lit("Country "),
            pl.col("which").cast(pl.String),
            pl.lit(pl.Series(np.where(rng.random(n) < 0.4, " Mobile", " Fixed"))),
        ),
        rate=pl.lit(_decimal_text(rate_micros)),
        connection_fee=pl.lit(pl.Series(np.where(rng.random(n) < 0.1, "0.01", ""))),
        initial_increment=pl.lit(pl.Series([i for i, _ in _INCREMENTS]).gather(increments)),
        subsequent_increment=pl.lit(pl.Series([s for _, s in _INCREMENTS]).gather(increments)),
        effective_from=pl.lit(_DECK_FROM),
        effective_until=pl.when(pl.lit(pl.Series(changed)))
        .then(pl.lit(_CHANGE_AT))
        .otherwise(pl.lit("")),
    )
    second = first.filter(pl.Series(changed)).with_columns(
        rate=pl.lit(_decimal_text((rate_micros[changed] * 1.1).astype(np.int64))),
        effective_from=pl.lit(_CHANGE_AT),
        effective_until=pl.lit(""),
    )
    return pl.concat([first, second])


def _decimal_text(micros: np.ndarray) -> pl.Series:
    whole = pl.Series(micros // 1_000_000).cast(pl.String)
    frac = pl.Series(micros % 1_000_000).cast(pl.String).str.zfill(6)
    return pl.select(pl.concat_str(pl.lit(whole), pl.lit("."), pl.lit(frac))).to_series()


@dataclass(frozen=True)
class BigDeck:
    """The 1M-prefix plans folder and a clean CDR file rated against it."""

    plans: Path
    cdrs: Path
    prefixes: int
    deck_rows: int
    cdr_count: int


def big_deck_network(root: Path, prefixes: int, cdrs: int, seed: int = 11) -> BigDeck:
    """Write the big-deck plans folder and ``cdrs`` clean CDRs to ``root``."""
    rng = np.random.default_rng(seed)
    plans = root / "plans"
    (plans / "decks").mkdir(parents=True, exist_ok=True)
    chosen = _prefixes(rng, prefixes)
    big = _deck_frame(rng, chosen, 1.0)
    client = _deck_frame(rng, chosen.sample(min(50_000, prefixes), seed=seed), 0.7)
    reseller = _deck_frame(rng, chosen.sample(min(20_000, prefixes), seed=seed + 1), 0.1)
    for plan_id, deck in (
        ("t1-customer-big", big),
        ("t1-client-1", client),
        ("t1-reseller-1", reseller),
    ):
        empty_as_null = deck.with_columns(pl.col(pl.String).replace("", None))
        empty_as_null.write_csv(plans / "decks" / f"{plan_id}.csv")
    (plans / "plans.csv").write_text(
        "plan_id,tenant_id,name,scope,currency,decimals,rounding\n"
        "t1-customer-big,t1,Wholesale A-Z 1M,customer,EUR,6,half_up\n"
        "t1-client-1,t1,Gateway cost,client,EUR,4,up\n"
        "t1-reseller-1,t1,Payout,reseller,EUR,2,down\n"
    )
    customers = [f"t1-cus-{k:03d}" for k in range(1, 21)]
    clients = [f"t1-gw-{k:03d}" for k in range(1, 11)]
    associations = ["scope,account_id,plan_id,effective_from,effective_until"]
    associations += [f"customer,{c},t1-customer-big,{_DECK_FROM}," for c in customers]
    associations += [f"client,{c},t1-client-1,{_DECK_FROM}," for c in clients]
    associations.append(f"reseller,t1-res-01,t1-reseller-1,{_DECK_FROM},")
    (plans / "associations.csv").write_text("\n".join(associations) + "\n")
    memberships = ["client_id,reseller_id,effective_from,effective_until"]
    memberships += [f"{c},t1-res-01,{_DECK_FROM}," for c in clients[:5]]
    (plans / "memberships.csv").write_text("\n".join(memberships) + "\n")
    cdr_path = root / "cdrs.jsonl"
    _big_deck_cdrs(rng, chosen, customers, clients, cdrs, cdr_path)
    return BigDeck(plans, cdr_path, chosen.height, big.height, cdrs)


def _big_deck_cdrs(
    rng: np.random.Generator,
    prefixes: pl.DataFrame,
    customers: list[str],
    clients: list[str],
    n: int,
    path: Path,
) -> None:
    """Clean cdr.v1 lines whose callees extend a random prefix of the big deck."""
    pick = prefixes["prefix"].gather(rng.integers(0, prefixes.height, n))
    length = pick.str.len_bytes().to_numpy().astype(np.int64)
    total = np.minimum(15, np.maximum(length + 1, 11 + rng.integers(0, 3, n)))
    fill = total - length
    fill_value = (rng.random(n) * 10.0**fill).astype(np.int64)
    start = _MONTH_START_US + (rng.random(n) * (_MONTH_US - 3_600_000_000)).astype(np.int64)
    answered = rng.random(n) < 0.7
    duration = np.where(answered, rng.lognormal(11.0, 1.1, n).astype(np.int64) + 1, 0)
    end = start + duration * 1000 + 500_000
    ids = rng.integers(0, 2**62, n)
    stamp = "%Y-%m-%dT%H:%M:%S.%6fZ"

    def text(us: np.ndarray) -> pl.Expr:
        return pl.lit(pl.Series(us)).cast(pl.Datetime("us", "UTC")).dt.strftime(stamp)

    line = pl.concat_str(
        pl.lit('{"cdr_id": "big-'),
        pl.lit(pl.Series(ids)).cast(pl.String),
        pl.lit('", "session_id": "s'),
        pl.lit(pl.Series(ids // 7)).cast(pl.String),
        pl.lit('@sbc1", "tenant_id": "t1", "customer_id": "'),
        pl.lit(pl.Series(customers).gather(rng.integers(0, len(customers), n))),
        pl.lit('", "client_id": "'),
        pl.lit(pl.Series(clients).gather(rng.integers(0, len(clients), n))),
        pl.lit('", "caller": "+4930'),
        pl.lit(pl.Series(rng.integers(10**6, 10**7, n))).cast(pl.String),
        pl.lit('", "callee": "+'),
        pl.lit(pick),
        pl.lit(pl.Series(fill_value)).cast(pl.String).str.zfill(pl.lit(pl.Series(fill))),
        pl.lit('", "start_time": "'),
        text(start),
        pl.lit('", "end_time": "'),
        text(end),
        pl.lit('", "duration_ms": '),
        pl.lit(pl.Series(duration)).cast(pl.String),
        pl.lit(', "disposition": "'),
        pl.lit(pl.Series(np.where(answered, "ANSWERED", "NO_ANSWER"))),
        pl.lit('", "sip_code": '),
        pl.lit(pl.Series(np.where(answered, 200, 480))).cast(pl.String),
        pl.lit("}"),
    )
    lines = pl.select(line.alias("line"))
    lines.write_csv(path, include_header=False, quote_style="never")
