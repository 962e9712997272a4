"""Small polars helpers the column builders share (CDR lines, timestamp texts)."""

from __future__ import annotations

import numpy as np
import polars as pl


def zfill(values: np.ndarray | pl.Expr, width: int | pl.Expr) -> pl.Expr:
    expr = values if isinstance(values, pl.Expr) else pl.lit(pl.Series(values))
    return expr.cast(pl.String).str.zfill(width)


def evaluate(expr: pl.Expr) -> pl.Series:
    return pl.select(expr.alias("value")).to_series()


def when(mask: np.ndarray, then: pl.Expr | str, otherwise: pl.Expr | str) -> pl.Expr:
    then_expr = pl.lit(then) if isinstance(then, str) else then
    other_expr = pl.lit(otherwise) if isinstance(otherwise, str) else otherwise
    return pl.when(pl.lit(pl.Series(mask))).then(then_expr).otherwise(other_expr)
