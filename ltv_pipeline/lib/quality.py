"""Great Expectations gates on pandas DataFrames: run a code-defined suite, report what failed.

GX 1.x, an ephemeral context per run, the pandas datasource (PITFALLS.md: GX's SQL datasource
on DuckDB reports every expectation failed with an empty result, so callers read the table into
a DataFrame first). An expectation that raised is a failure carrying its message, never a pass.
The suites themselves live in lib/quality_suites.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ltv_pipeline.lib.jsonable import to_jsonable
from ltv_pipeline.lib.lazy import lazy, load

SAMPLE_SIZE = 5



def _skip_frame_hash(pandas_engine) -> None:
    """GX fingerprints every pandas batch it loads (md5 of pandas' hash of the whole frame, a
    third of the validation time on millions of rows) for a batch marker nothing here reads; GX
    itself skips it for frames over HASH_THRESHOLD bytes. Skip it always
    (tests/unit/test_quality.py)."""
    pandas_engine.HASH_THRESHOLD = 0


# Imported on first use (lib/lazy.py): loading the Dagster definitions must not pay for GX.
gx = lazy("great_expectations")
gxe = lazy("great_expectations.expectations")
gx_pandas = lazy("great_expectations.execution_engine.pandas_execution_engine", _skip_frame_hash)


@dataclass(frozen=True)
class QualitySuite:
    """A GX expectation suite and what it needs to run on a frame.

    sample_columns identify an offending row in samples (keys, the file row _row); the ones
    the frame has are used. derive adds computed columns (e.g. a cutoff's history end) to a
    copy of the frame before validation, so the rule itself is still a GX expectation."""

    suite: gx.ExpectationSuite
    sample_columns: tuple[str, ...] = ()
    derive: Callable[[pd.DataFrame], pd.DataFrame] | None = None

    @property
    def name(self) -> str:
        return self.suite.name


@dataclass
class FailedExpectation:
    type: str
    columns: list[str]
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    sample: list[Any] = field(default_factory=list)  # offending rows (dicts) or values
    exceptions: list[str] = field(default_factory=list)
    observed: Any = None  # for table-level expectations (e.g. the columns found)

    def describe(self) -> str:
        cols = ", ".join(self.columns) or "table"
        if self.exceptions:
            return f"{self.type} on {cols} raised: {'; '.join(self.exceptions)}"
        if self.unexpected_count is not None:
            pct = f" ({self.unexpected_percent:.4g}%)" if self.unexpected_percent is not None else ""
            return f"{self.type} on {cols}: {self.unexpected_count:,} unexpected rows{pct}"
        return f"{self.type} on {cols}: observed {self.observed!r}"


@dataclass
class QualityResult:
    suite: str
    success: bool
    rows: int
    evaluated: int
    failed: list[FailedExpectation]
    gx_result: dict = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        head = f"suite {self.suite}: {self.evaluated} expectations on {self.rows:,} rows"
        if self.success:
            return f"{head}, all passed"
        return f"{head}, {len(self.failed)} failed: " + " | ".join(f.describe() for f in self.failed)

    def to_dict(self, with_gx: bool = False) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "gx_result"}
        if with_gx:
            out["gx_result"] = self.gx_result
        return to_jsonable(out)

    def to_markdown(self, sample_rows: int = SAMPLE_SIZE) -> str:
        """Failed expectations as a Markdown table, then a sample of offending rows of each."""
        if self.success:
            return f"All {self.evaluated} expectations passed on {self.rows:,} rows."
        lines = ["| expectation | column(s) | unexpected | % | error |", "|---|---|---|---|---|"]
        for f in self.failed:
            pct = "" if f.unexpected_percent is None else f"{f.unexpected_percent:.4g}"
            cnt = "" if f.unexpected_count is None else f"{f.unexpected_count:,}"
            err = "; ".join(f.exceptions).replace("|", "/").replace("\n", " ")[:200]
            lines.append(f"| {f.type} | {', '.join(f.columns)} | {cnt} | {pct} | {err} |")
        for f in self.failed:
            rows = to_jsonable(f.sample[:sample_rows])
            if not rows:
                continue
            lines += ["", f"**{f.type}** ({', '.join(f.columns)}): sample of offending rows", ""]
            if all(isinstance(r, dict) for r in rows):
                cols = list(dict.fromkeys(c for r in rows for c in r))
                lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                lines += ["| " + " | ".join(str(r.get(c)) for c in cols) + " |" for r in rows]
            else:
                lines.append(", ".join(repr(v) for v in rows))
        return "\n".join(lines)


def run_suite(df: pd.DataFrame, suite: QualitySuite, sample_size: int = SAMPLE_SIZE) -> QualityResult:
    """Validate df against the suite with GX and report every failed or errored expectation."""
    try:
        frame = suite.derive(df.copy()) if suite.derive else df
    except Exception as exc:  # a frame the rule cannot even be computed on fails the suite
        failure = FailedExpectation("derive_columns", [], exceptions=[f"{type(exc).__name__}: {exc}"])
        return QualityResult(suite.name, False, len(df), 0, [failure])
    from great_expectations.data_context.types.base import ProgressBarsConfig

    load(gx_pandas)  # applies _skip_frame_hash before GX loads the batch
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("frames")
        .add_dataframe_asset(suite.name)
        .add_batch_definition_whole_dataframe("whole_frame")
    )
    gx_suite = context.suites.add(
        gx.ExpectationSuite(name=suite.name, expectations=[e.copy() for e in suite.suite.expectations])
    )
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite)
    )
    needed = needed_columns(suite)
    if needed is not None and not set(frame.columns) <= needed:
        frame = frame[[c for c in frame.columns if c in needed]]  # GX copies the frame per metric
    index_cols = [c for c in suite.sample_columns if c in frame.columns]
    # The saved result keeps the offending rows' keys; GX's pandas "query" string (the index of
    # every unexpected row) is not needed and costs a pass over the frame per expectation.
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": sample_size,
                                     "return_unexpected_index_query": False}
    if index_cols:
        result_format["unexpected_index_column_names"] = index_cols
    # GX filters the whole frame (nulls out, then the unexpected rows) for every expectation;
    # without copy-on-write each filter that keeps every row is a deep copy of the frame (two
    # thirds of the time on 3.3M transactions). Under copy-on-write the copies are lazy, and GX
    # gets a lazy copy of its own, so nothing it does can reach the caller's frame.
    try:
        with pd.option_context("mode.copy_on_write", True):
            res = validation.run(batch_parameters={"dataframe": frame.copy(deep=False)},
                                 result_format=result_format)
    finally:
        # GX keeps its last context alive (the project manager) and the batch with it: the
        # validated frame stayed in memory until the next suite, so a 30-date scoring backfill at
        # 1M users carried its leakage check's 60M rows (~4 GB) through ltv_scores.
        context.data_sources.delete("frames")
    failed = [_failure(r, sample_size) for r in res.results if not r.success or _exceptions(r.exception_info)]
    evaluated = len(res.results)
    if evaluated != len(suite.suite.expectations):
        failed.append(FailedExpectation(
            "missing_results", [],
            exceptions=[f"GX returned {evaluated} results for {len(suite.suite.expectations)} expectations"],
        ))
    return QualityResult(
        suite=suite.name,
        success=bool(res.success) and not failed,
        rows=len(frame),
        evaluated=evaluated,
        failed=failed,
        gx_result=to_jsonable(res.to_json_dict()),
    )


def save_result(result: QualityResult, path: Path) -> Path:
    """Write the result (with the GX validation result) as JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(with_gx=True), indent=2, default=str))
    return path


def row_count_consistency(counts: pd.DataFrame | Iterable[Mapping[str, Any]]) -> QualityResult:
    """Every table of a load batch accounts for every row of its file.

    counts: one row per table with table_name, rows_in_file (logged), raw_rows and
    quarantined_rows (counted in the tables); optionally rows_loaded and rows_quarantined (the
    logged counts) and rows_from_other_batches (rows in the table from another batch). Reads
    nothing itself."""
    frame = pd.DataFrame(list(counts) if not isinstance(counts, pd.DataFrame) else counts)
    for col in ("table_name", "rows_in_file", "raw_rows", "quarantined_rows"):
        if col not in frame.columns:
            frame[col] = pd.Series(dtype="float64")
    exps: list = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="rows_in_file"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="accounted_rows", column_B="rows_in_file"),
    ]
    if {"rows_loaded", "rows_quarantined"} <= set(frame.columns):
        exps += [
            gxe.ExpectColumnPairValuesToBeEqual(column_A="raw_rows", column_B="rows_loaded"),
            gxe.ExpectColumnPairValuesToBeEqual(column_A="quarantined_rows", column_B="rows_quarantined"),
        ]
    if "rows_from_other_batches" in frame.columns:
        exps.append(gxe.ExpectColumnValuesToBeBetween(column="rows_from_other_batches", max_value=0))

    def derive(f: pd.DataFrame) -> pd.DataFrame:
        f["accounted_rows"] = f["raw_rows"] + f["quarantined_rows"]
        return f

    suite = gx.ExpectationSuite(name="load_batch_row_counts", expectations=exps)
    return run_suite(frame, QualitySuite(suite, ("batch_id", "table_name"), derive))


# Table-level expectations whose outcome does not depend on columns they do not name.
_COLUMN_BLIND = {"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"}


def needed_columns(suite: QualitySuite) -> set[str] | None:
    """The columns the suite reads (None when unsure): the others are dropped before GX."""
    needed = set(suite.sample_columns)
    for e in suite.suite.expectations:
        kw = e.configuration.kwargs
        if e.configuration.type == "expect_table_columns_to_match_set" and kw.get("exact_match") is False:
            needed.update(kw["column_set"])
        elif any(k in kw for k in ("column", "column_A", "column_list")):
            needed.update(kw[k] for k in ("column", "column_A", "column_B") if k in kw)
            needed.update(kw.get("column_list") or [])
        elif e.configuration.type not in _COLUMN_BLIND:
            return None
    return needed


def _failure(r, sample_size: int) -> FailedExpectation:
    cfg = r.expectation_config
    kw = cfg.kwargs
    columns = [kw[k] for k in ("column", "column_A", "column_B") if kw.get(k) is not None]
    columns += list(kw.get("column_list") or [])
    res = r.result or {}
    sample = res.get("partial_unexpected_index_list") or res.get("partial_unexpected_list") or []
    observed = res.get("details") or res.get("observed_value")  # details name missing columns
    return FailedExpectation(
        type=cfg.type,
        columns=[str(c) for c in columns],
        unexpected_count=_int_or_none(res.get("unexpected_count")),
        unexpected_percent=_float_or_none(res.get("unexpected_percent")),
        sample=to_jsonable(list(sample)[:sample_size]),
        exceptions=_exceptions(r.exception_info),
        observed=to_jsonable(observed),
    )


def _exceptions(info: Any) -> list[str]:
    """Messages of every exception GX recorded: either one {raised_exception, ...} dict or a
    dict of them keyed by metric."""
    if not isinstance(info, Mapping):
        return []
    if "raised_exception" in info:
        if info.get("raised_exception"):
            return [str(info.get("exception_message") or "the expectation raised an exception")]
        return []
    out: list[str] = []
    for value in info.values():
        out += [m for m in _exceptions(value) if m not in out]
    return out


def _int_or_none(v) -> int | None:
    return None if v is None else int(v)


def _float_or_none(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
