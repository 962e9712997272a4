"""``decks convert`` on a 300,000-line carrier A-Z file: how long each step takes.

The plans folder holds a plan whose deck prices 300,000 codes; the carrier's A-Z file (UTF-16,
semicolons, decimal commas, dd/mm/yyyy dates in Berlin, a few cells listing two codes) gives
every code again, a third of them at a new rate, drops 1% of them and adds 1% new ones. The
conversion runs as a user runs it (``vmgate-rating decks convert --mode replace``, in this
process), then its steps are timed one by one: reading the file, converting, validating the
whole folder with the new deck and writing it.

    python -m benchmarks.carrier_convert [--lines 300000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import tempfile
import time
from pathlib import Path

PROFILE = """
format = "csv"
delimiter = ";"
encoding = "utf-16"
decimal_separator = ","
date_format = "%d/%m/%Y"
timezone = "Europe/Berlin"
code_separator = ","
[columns]
destination = "Destination"
prefix = "Codes"
rate = "Rate"
effective_from = "Effective"
change = "Change"
"""


def _write_inputs(root: Path, lines: int, seed: int = 7) -> tuple[Path, Path, Path]:
    rng = random.Random(seed)
    codes = sorted({str(rng.randrange(10**5, 10**9)) for _ in range(int(lines * 1.05))})[:lines]
    rates = {code: rng.randrange(10, 900_000) for code in codes}
    plans = root / "plans"
    (plans / "decks").mkdir(parents=True)
    (plans / "plans.csv").write_text(
        "plan_id,tenant_id,name,scope,currency\nC1,t1,Carrier,client,EUR\n"
    )
    (plans / "associations.csv").write_text(
        "scope,account_id,plan_id,effective_from,effective_until\n"
        "client,gw1,C1,2026-01-01T00:00:00Z,\n"
    )
    deck = ["prefix,destination,rate,effective_from,effective_until"]
    deck += [f"{code},Dest {code[:3]},0.{rates[code]:06d},2026-01-01T00:00:00Z," for code in codes]
    (plans / "decks" / "C1.csv").write_text("\n".join(deck) + "\n")
    rows = ["Destination;Codes;Rate;Effective;Change"]
    kept = [code for code in codes if rng.random() > 0.01]  # 1% dropped from the A-Z
    added = [str(10**9 + i) for i in range(lines // 100)]  # 1% new
    index = 0
    while index < len(kept):
        cell = kept[index : index + (2 if rng.random() < 0.05 else 1)]
        index += len(cell)
        rate = rates[cell[0]]
        changed = rng.random() < 0.33
        new_rate = rate + rng.randrange(-5, 6) * 1000 if changed else rate
        new_rate = max(new_rate, 1)
        word = "Unchanged" if new_rate == rate else "Increase" if new_rate > rate else "Decrease"
        # Cells listing two codes give both the first code's new rate.
        rows.append(f"Dest {cell[0][:3]};{','.join(cell)};0,{new_rate:06d};08/04/2026;{word}")
    rows += [f"New {code[:3]};{code};0,012000;08/04/2026;New" for code in added]
    carrier = root / "carrier.csv"
    carrier.write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode("utf-16-le"))
    profile = root / "carrier.toml"
    profile.write_text(PROFILE)
    return plans, carrier, profile


def main() -> None:
    """Generate the inputs, convert as a user does, then time each step."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=300_000, help="carrier file lines")
    args = parser.parse_args()
    from pipeline.cli import main as cli
    from pipeline.reference.carrier_decks import (
        convert_deck,
        read_deck_profile,
        write_conversion,
    )
    from pipeline.reference.carrier_files import read_carrier_table
    from pipeline.reference.files import FolderPlanFiles

    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        plans, carrier, profile_path = _write_inputs(root, args.lines)
        size_mb = carrier.stat().st_size / 1e6
        print(f"carrier file: {args.lines:,} codes, {size_mb:.1f} MB UTF-16; deck: same codes")
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the summary lists 3,000 closed codes
            status = cli(
                ["decks", "convert", "--input", str(carrier), "--profile", str(profile_path),
                 "--plans", str(plans), "--plan", "C1", "--mode", "replace", "--dry-run"]
            )  # fmt: skip
        whole = time.perf_counter() - started
        assert status == 0
        profile = read_deck_profile(profile_path)
        started = time.perf_counter()
        table = read_carrier_table(carrier, profile.layout, profile.columns)
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        conversion = convert_deck(FolderPlanFiles(plans), "C1", carrier, profile, mode="replace")
        convert_s = time.perf_counter() - started
        started = time.perf_counter()
        write_conversion(plans, conversion)
        write_s = time.perf_counter() - started
        counts = conversion.counts()
        print(
            f"decks convert --dry-run (whole command, plans folder validated first): {whole:.2f} s"
        )
        print(f"  read the carrier file ({table.height:,} rows):        {read_s:.2f} s")
        print(
            f"  convert (read included, {conversion.rows.height:,} codes):       {convert_s:.2f} s"
        )
        print(f"  validate the folder with the new deck and write it: {write_s:.2f} s")
        print("  " + ", ".join(f"{v:,} {k}" for k, v in counts.items() if k != "notice_violations"))


if __name__ == "__main__":
    main()
