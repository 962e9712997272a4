"""Synthetic VMGate network: a plans folder and a JSONL file of CDRs (demos, tests, benchmarks).

``write_network`` writes the reference data in exactly the file format of DESIGN.md section 4
("Reference data as files") and CDRs in the ``cdr.v1`` shape of section 3, one JSON object per
line. The output is a function of the ``NetworkSpec`` alone: every draw comes from
``random.Random(spec.seed)`` or, for the CDR columns, from a ``numpy`` generator seeded from that
same stream; no global random state, no clock. A test can regenerate the same network from its
seed (with the same Python, numpy and polars versions). 600,000 CDRs take about 3 s: the CDR file
is built column by column, never one Python object per row.

What a caller may rely on (tests of the rating engine are built on it):

* Decks carry realistic nested E.164 prefixes (``44``, ``447``, ``4477``, ``44770``...), rates with
  up to six decimals, some connection fees, increments from 1/1, 60/60, 30/6, 60/1, 6/6, and
  effective dating inside the month: rate changes at an instant, longer prefixes that expire with
  no successor, a prefix effective twice with different ``effective_from``, prefixes that appear
  mid-month, rows that are only in the past or the future. Never two rows of one deck with the same
  prefix and the same ``effective_from``.
* Associations never overlap for one account and scope, and always point at a plan of the
  account's scope and tenant; memberships never overlap for one client. Some accounts switch plan
  or reseller at an instant, some clients are Direct, one reseller per tenant has no plan, and some
  customers are without a plan for part of the month (``customer:no_plan``).
* CDRs start inside ``spec.month`` (UTC), some exactly on a change instant or 1 us / 1 ms before
  it; callees come in several notations; about 5% carry an explicit ``reseller_id``.
* ``malformed_ratio`` of the lines break exactly one rule of the contract; their 1-based line
  numbers and kinds are in the summary. No line is empty, no cdr_id repeats, and no string field
  ever holds a number.

The package's public API is what this module exports; its modules are private (``_``) and may
change with any commit. They are, in the order ``write_network`` uses them:

* ``_spec``: ``NetworkSpec`` and ``NetworkSummary``, and the check of a spec;
* ``_clock``: the month, the instants where plans and memberships change, timestamp texts;
* ``_countries``: the numbering plan (country codes, areas, mobile prefixes, number lengths);
* ``_plans``: the plans of each tenant and scope;
* ``_decks``: the rows of one deck (nested prefixes, rates, increments, effective dating);
* ``_accounts``: a tenant's accounts, its associations and memberships;
* ``_exprs``, ``_timestamps``, ``_cdrs``: the valid CDR lines, column by column;
* ``_malformed``: ``MALFORMED_KINDS`` and the line that breaks each;
* ``_cdr_file``: the CDR file, valid and malformed lines in their places;
* ``_price_shape`` and ``_origins_and_bands``: tariff v2 (DESIGN.md section 8), on when the spec
  asks for it (``price_shape``, ``origins_and_bands``), each from a generator of its own so a
  network without it is byte-for-byte what it was before;
* ``_roster``: the roster part (``accounts``): ``accounts.csv``, ``join_codes.csv``,
  ``enrollments.csv`` (derived from the memberships, so they agree) and ``fx_rates.csv`` in the
  plans folder, client status events and payments as JSONL next to the CDR file, and a burst of
  calls appended to the CDR file, designed so that every money alert fires at the end of the
  month (``RosterSummary`` says what was designed); from a generator of its own too;
* ``_network``: ``write_network``, which writes the plans folder and calls the rest.
"""

from pipeline.synthetic._malformed import MALFORMED_KINDS
from pipeline.synthetic._network import write_network
from pipeline.synthetic._roster import RosterSummary
from pipeline.synthetic._spec import NetworkSpec, NetworkSummary

__all__ = ["MALFORMED_KINDS", "NetworkSpec", "NetworkSummary", "RosterSummary", "write_network"]
