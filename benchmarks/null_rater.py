"""The streaming rater with the rating taken out: the floor of ``vmgate-rating run`` (issue 17).

``python -m benchmarks.null_rater run ...`` (the arguments of ``vmgate-rating run``) is the real
command, the same Kafka source, dead-letter producer, store and offset commits, with one
difference: the rater's ``rate_messages`` is replaced by :func:`null_rate`, which decodes the
batch (``decode_cdrs``, the same screen and validation) and writes the same number of
call-history rows without rating them: the decoded CDR columns, and leg columns copied from
rows rated once at start-up (``VMGATE_NULL_TEMPLATE``: a CDR file, rated before the consumer
starts) so the store receives values of the same kinds and sizes. The real rater's throughput
over this one's, measured in the same run on the same topic, is the "streaming near its floor"
ratio.

No pipeline code changes for it: the replacement is of the name the rater module imported,
checked to exist so a renamed function fails loudly rather than measuring the real rater.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

_TEMPLATE: dict[str, Any] = {}


def _load_template(cdrs: Path, plans: Path, count: int = 100_000) -> None:
    from benchmarks.common import RATED_AT
    from benchmarks.datagen import read_lines
    from pipeline.rating.columns import CDR_PASS_THROUGH
    from pipeline.rating.messages import rate_messages
    from pipeline.reference.loader import load_plans_folder

    table = rate_messages(read_lines(cdrs, count), load_plans_folder(plans), RATED_AT).table
    _TEMPLATE["table"] = table.drop_columns([*CDR_PASS_THROUGH, "cdr_reseller_id"])


def null_rate(messages: Sequence[bytes], reference: object, rated_at: datetime) -> Any:
    """Decode ``messages``; call-history rows of the decoded CDRs with copied leg columns."""
    import pyarrow as pa

    from pipeline.rating.columns import CALL_HISTORY_SCHEMA, CDR_PASS_THROUGH
    from pipeline.rating.decode import decode_cdrs
    from pipeline.rating.messages import RatedMessages

    decoded = decode_cdrs(messages)
    good = decoded.good
    template: pa.Table = _TEMPLATE["table"]
    while template.num_rows < good.height:  # a batch bigger than the template: repeat it
        template = pa.concat_tables([template, template])
    legs = template.slice(0, good.height)
    base = good.select(CDR_PASS_THROUGH).to_arrow()
    arrays = {name: base.column(name) for name in CDR_PASS_THROUGH}
    arrays["cdr_reseller_id"] = good["reseller_id"].to_arrow()
    arrays.update({name: legs.column(name) for name in legs.column_names})
    columns = []
    for field in CALL_HISTORY_SCHEMA:
        column = arrays[field.name]
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        columns.append(column if column.type == field.type else column.cast(field.type))
    table = pa.Table.from_arrays(columns, schema=CALL_HISTORY_SCHEMA)
    return RatedMessages(table, decoded.rejected)


def main(argv: Sequence[str] | None = None) -> int:
    """Load the template, replace the rater's rating, run ``vmgate-rating`` with ``argv``."""
    from pipeline import cli
    from pipeline.services import rater

    if not hasattr(rater, "rate_messages"):
        msg = "pipeline.services.rater no longer has rate_messages: update the null rater"
        raise SystemExit(msg)
    _load_template(Path(os.environ["VMGATE_NULL_TEMPLATE"]), Path(os.environ["VMGATE_NULL_PLANS"]))
    rater.rate_messages = null_rate
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
