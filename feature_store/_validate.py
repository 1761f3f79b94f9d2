"""Vectorized validation of raw batches against the record contract, in DuckDB SQL.

The rules come from :func:`core.field_specs` (the :class:`core.CompletionRecord`
model) and :data:`core.CROSS_FIELD_RULES`, so a file row and an API record are held
to the same contract. :func:`staging_sql` turns a raw batch (any subset of record
columns, typed or as strings, plus ``_line`` and optional importer errors) into one
row per input with typed columns and the first failing check as
``_reject_field``/``_reject_reason`` (both null for a valid row).
"""

from __future__ import annotations

from collections.abc import Iterable

from core import CROSS_FIELD_RULES, EARLIEST_TIME, LATEST_TIME, FieldSpec, field_specs
from feature_store._schema import DUCKDB_TYPES
from feature_store.importers._base import ERROR, ERROR_FIELD, LINE

_SHOW = "left(CAST({c} AS VARCHAR), 60)"
_TS_LO = f"TIMESTAMPTZ '{EARLIEST_TIME.isoformat()}'"
_TS_HI = f"TIMESTAMPTZ '{LATEST_TIME.isoformat()}'"
_EPOCH_LO, _EPOCH_HI = EARLIEST_TIME.timestamp(), LATEST_TIME.timestamp()
_RANGE = f"{EARLIEST_TIME.isoformat()} .. {LATEST_TIME.isoformat()}"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _typed_expr(
    spec: FieldSpec, present: bool, arrow_kind: str
) -> tuple[str, list[tuple[str, str]]]:
    """Return (typed SQL expression, [(condition, reason SQL)]) for one field."""
    c = _q(spec.name)
    if not present:
        null = f"CAST(NULL AS {DUCKDB_TYPES[spec.kind]})"
        return null, ([("TRUE", _literal("required field is missing"))] if spec.required else [])
    checks: list[tuple[str, str]] = []
    raw_blank = f"({c} IS NULL OR trim(CAST({c} AS VARCHAR)) = '')"
    show = _SHOW.format(c=c)
    if spec.kind == "str":
        # NUL is no character a prompt or a name means, and PostgreSQL text cannot hold
        # it: every backend stores U+FFFD in its place (hashes see the same text).
        expr = f"NULLIF(replace(trim(CAST({c} AS VARCHAR)), chr(0), chr(65533)), '')"
        if spec.max_length is not None:
            checks.append(
                (
                    f"length({expr}) > {spec.max_length}",
                    _literal(f"longer than {spec.max_length} characters"),
                )
            )
    elif spec.kind in ("int", "float"):
        as_double = f"TRY_CAST({c} AS DOUBLE)"
        bad = f"NOT {raw_blank} AND ({as_double} IS NULL OR NOT isfinite({as_double})"
        if spec.kind == "int":
            bad += f" OR {as_double} <> floor({as_double}) OR abs({as_double}) > 9e18"
            expr = (
                f"CASE WHEN {raw_blank} OR {as_double} <> floor({as_double}) THEN NULL "
                f"ELSE TRY_CAST({as_double} AS BIGINT) END"
            )
            word = "an integer"
        else:
            expr = f"CASE WHEN {raw_blank} THEN NULL ELSE {as_double} END"
            word = "a finite number"
        checks.append((bad + ")", f"'not {word}: ' || {show}"))
        for op, bound, sym in (("<", spec.ge, ">="), ("<=", spec.gt, ">"), (">", spec.le, "<=")):
            if bound is not None:
                checks.append(
                    (
                        f"{expr} {op} {bound}",
                        f"'must be {sym} {bound} (got ' || CAST({expr} AS VARCHAR) || ')'",
                    )
                )
    else:  # timestamp
        expr, ts_checks = _timestamp_expr(c, arrow_kind)
        checks += [(f"NOT {raw_blank} AND {cond}", reason) for cond, reason in ts_checks]
    if spec.required:
        checks.insert(0, (raw_blank, _literal("required field is missing")))
    return expr, checks


def _timestamp_expr(c: str, arrow_kind: str) -> tuple[str, list[tuple[str, str]]]:
    """(typed expression, [(condition, reason SQL)]) of a timestamp column ``c``.

    Never raises on a row: a value outside :data:`core.EARLIEST_TIME` ..
    :data:`core.LATEST_TIME` (which DuckDB could hold, PostgreSQL or Python not) is
    NULL in the typed column and rejected with the range as reason.
    """
    s = f"trim(CAST({c} AS VARCHAR))"
    parsed, seconds = {
        "timestamp": (f"CAST({c} AS TIMESTAMPTZ)", "CAST(NULL AS DOUBLE)"),
        "number": ("CAST(NULL AS TIMESTAMPTZ)", f"CAST({c} AS DOUBLE)"),
    }.get(arrow_kind, (f"TRY_CAST({s} AS TIMESTAMPTZ)", f"TRY_CAST({s} AS DOUBLE)"))
    expr = (
        f"CASE WHEN {parsed} IS NOT NULL THEN "
        f"CASE WHEN {parsed} BETWEEN {_TS_LO} AND {_TS_HI} THEN {parsed} END "
        f"WHEN {seconds} BETWEEN {_EPOCH_LO} AND {_EPOCH_HI} THEN to_timestamp({seconds}) END"
    )
    show = _SHOW.format(c=c)
    return expr, [
        (
            f"{parsed} IS NULL AND {seconds} IS NULL",
            f"'not a timestamp (ISO 8601 or unix seconds): ' || {show}",
        ),
        (f"{expr} IS NULL", f"{_literal(f'outside {_RANGE}')} || ' (got ' || {show} || ')'"),
    ]


def _completion_time_check(submitted: str, latency: str) -> tuple[str, str, str]:
    """(condition, field SQL, reason SQL): ``submitted_at + latency_s`` past LATEST_TIME."""
    return (
        f"round({latency} * 1e6) > epoch_us({_TS_HI}) - epoch_us({submitted})",
        _literal("latency_s"),
        _literal(f"submitted_at + latency_s is after {LATEST_TIME.isoformat()}")
        + f" || ' (got ' || CAST({latency} AS VARCHAR) || ' s)'",
    )


def staging_sql(source: str, columns: dict[str, str]) -> str:
    """Build the SELECT that types and validates a raw batch.

    Args:
        source: Name of the registered raw relation.
        columns: Its columns mapped to an Arrow kind: ``"timestamp"``, ``"number"``
            or ``"other"``. Must include ``_line``.

    Returns:
        SQL selecting ``_line``, every record field (typed, original names),
        ``_reject_field`` and ``_reject_reason``.
    """
    typed: list[str] = []
    cases: list[tuple[str, str, str]] = []  # (condition, field SQL, reason SQL)
    if ERROR in columns:
        field_sql = _q(ERROR_FIELD) if ERROR_FIELD in columns else "NULL"
        cases.append((f"{_q(ERROR)} IS NOT NULL", f"NULLIF({field_sql}, '')", _q(ERROR)))
    exprs: dict[str, str] = {}
    for spec in field_specs():
        expr, checks = _typed_expr(spec, spec.name in columns, columns.get(spec.name, "other"))
        exprs[spec.name] = expr
        typed.append(f"{expr} AS {_q(spec.name)}")
        cases += [(cond, _literal(spec.name), reason) for cond, reason in checks]
    if "latency_s" in columns:
        cases.append(_completion_time_check(exprs["submitted_at"], exprs["latency_s"]))
    for rule in CROSS_FIELD_RULES:
        if rule.left in columns and rule.right in columns:
            left = _typed_expr(_spec(rule.left), True, columns[rule.left])[0]
            right = _typed_expr(_spec(rule.right), True, columns[rule.right])[0]
            cases.append(
                (
                    f"{left} > {right}",
                    _literal(rule.left),
                    f"'must be <= {rule.right} (' || CAST({left} AS VARCHAR) || ' > ' "
                    f"|| CAST({right} AS VARCHAR) || ')'",
                )
            )
    field_case = " ".join(f"WHEN {cond} THEN {f}" for cond, f, _ in cases)
    reason_case = " ".join(f"WHEN {cond} THEN {r}" for cond, _, r in cases)
    return (
        f"SELECT _idx, CAST({_q(LINE)} AS BIGINT) AS _line, {', '.join(typed)}, "
        f"CASE {field_case or 'WHEN FALSE THEN NULL'} END AS _reject_field, "
        f"CASE {reason_case or 'WHEN FALSE THEN NULL'} END AS _reject_reason "
        f"FROM {source}"
    )


def _spec(name: str) -> FieldSpec:
    return next(s for s in field_specs() if s.name == name)


def unknown_columns(names: Iterable[str]) -> list[str]:
    """Columns of a raw batch that are neither record fields nor importer metadata."""
    allowed = {s.name for s in field_specs()} | {LINE, ERROR, ERROR_FIELD}
    return sorted(set(names) - allowed)
