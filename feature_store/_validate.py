"""Vectorized validation of raw batches against the record contract, in DuckDB SQL.

The rules come from :func:`core.field_specs` (the :class:`core.CompletionRecord`
model) and :data:`core.CROSS_FIELD_RULES`, so a file row and an API record are held
to the same contract. :func:`staging_sql` turns a raw batch (any subset of record
columns, typed or as strings, plus ``_line`` and optional importer errors) into one
row per input with typed columns and the first failing check as
``_reject_field``/``_reject_reason`` (both null for a valid row).

The SQL is layered so that each expression is written once: raw values are cast
(``__d_``, ``__p_``, ``__s_`` columns), then typed (``__t_``), then every check is one
``WHEN`` of a single ``CASE`` that numbers the first failing check (``__k``), which
the outer query maps to its field and reason. DuckDB's cost for a small batch is
almost all binding, which grows with the text of the query: this layout keeps a
one-row ingest at a few milliseconds. The SQL for a set of columns is built once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from core import CROSS_FIELD_RULES, EARLIEST_TIME, LATEST_TIME, FieldSpec, field_specs
from feature_store._schema import DUCKDB_TYPES
from feature_store.importers._base import ERROR, ERROR_FIELD, LINE

_TS_LO = f"TIMESTAMPTZ '{EARLIEST_TIME.isoformat()}'"
_TS_HI = f"TIMESTAMPTZ '{LATEST_TIME.isoformat()}'"
_EPOCH_LO, _EPOCH_HI = EARLIEST_TIME.timestamp(), LATEST_TIME.timestamp()
_RANGE = f"{EARLIEST_TIME.isoformat()} .. {LATEST_TIME.isoformat()}"

#: (condition, field SQL, reason SQL) of one check; the first true one rejects a row.
Check = tuple[str, str, str]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _col(prefix: str, name: str) -> str:
    return _q(f"__{prefix}_{name}")


def _show(c: str) -> str:
    return f"left(CAST({c} AS VARCHAR), 60)"


def _blank(c: str) -> str:
    return f"({c} IS NULL OR trim(CAST({c} AS VARCHAR)) = '')"


def _cast_exprs(spec: FieldSpec, arrow_kind: str) -> list[str]:
    """Layer 1: the raw column ``spec.name`` cast once (``__d_``, ``__p_``, ``__s_``)."""
    c, name = _q(spec.name), spec.name
    if spec.kind in ("int", "float"):
        return [f"TRY_CAST({c} AS DOUBLE) AS {_col('d', name)}"]
    if spec.kind == "timestamp":
        s = f"trim(CAST({c} AS VARCHAR))"
        parsed, seconds = {
            "timestamp": (f"CAST({c} AS TIMESTAMPTZ)", "CAST(NULL AS DOUBLE)"),
            "number": ("CAST(NULL AS TIMESTAMPTZ)", f"CAST({c} AS DOUBLE)"),
        }.get(arrow_kind, (f"TRY_CAST({s} AS TIMESTAMPTZ)", f"TRY_CAST({s} AS DOUBLE)"))
        return [f"{parsed} AS {_col('p', name)}", f"{seconds} AS {_col('s', name)}"]
    return []


def _typed_expr(spec: FieldSpec, present: bool) -> str:
    """Layer 2: the typed value of ``spec.name`` (NULL where it is absent or unusable).

    A timestamp outside :data:`core.EARLIEST_TIME` .. :data:`core.LATEST_TIME` (which
    DuckDB could hold, PostgreSQL or Python not) is NULL here and rejected by a check.
    """
    if not present:
        return f"CAST(NULL AS {DUCKDB_TYPES[spec.kind]})"
    c, d = _q(spec.name), _col("d", spec.name)
    if spec.kind == "str":
        # NUL is no character a prompt or a name means, and PostgreSQL text cannot hold
        # it: every backend stores U+FFFD in its place (hashes see the same text).
        return f"NULLIF(replace(trim(CAST({c} AS VARCHAR)), chr(0), chr(65533)), '')"
    if spec.kind == "int":
        return (
            f"CASE WHEN {_blank(c)} OR {d} <> floor({d}) THEN NULL ELSE TRY_CAST({d} AS BIGINT) END"
        )
    if spec.kind == "float":
        return f"CASE WHEN {_blank(c)} THEN NULL ELSE {d} END"
    p, s = _col("p", spec.name), _col("s", spec.name)
    return (
        f"CASE WHEN {p} IS NOT NULL THEN CASE WHEN {p} BETWEEN {_TS_LO} AND {_TS_HI} THEN {p} END "
        f"WHEN {s} BETWEEN {_EPOCH_LO} AND {_EPOCH_HI} THEN to_timestamp({s}) END"
    )


def _checks(spec: FieldSpec, present: bool) -> list[tuple[str, str]]:
    """Layer 3: [(condition, reason SQL)] of one field, in the order they apply."""
    if not present:
        return [("TRUE", _literal("required field is missing"))] if spec.required else []
    c, t, name = _q(spec.name), _col("t", spec.name), spec.name
    blank, show = _blank(c), _show(c)
    checks = [(blank, _literal("required field is missing"))] if spec.required else []
    if spec.kind == "str" and spec.max_length is not None:
        checks.append(
            (
                f"length({t}) > {spec.max_length}",
                _literal(f"longer than {spec.max_length} characters"),
            )
        )
    elif spec.kind in ("int", "float"):
        d = _col("d", name)
        bad = f"NOT {blank} AND ({d} IS NULL OR NOT isfinite({d})"
        if spec.kind == "int":
            bad += f" OR {d} <> floor({d}) OR abs({d}) > 9e18"
        word = "an integer" if spec.kind == "int" else "a finite number"
        checks.append((bad + ")", f"'not {word}: ' || {show}"))
        for op, bound, sym in (("<", spec.ge, ">="), ("<=", spec.gt, ">"), (">", spec.le, "<=")):
            if bound is not None:
                got = f"CAST({t} AS VARCHAR)"
                checks.append(
                    (f"{t} {op} {bound}", f"'must be {sym} {bound} (got ' || {got} || ')'")
                )
    elif spec.kind == "timestamp":
        p, s = _col("p", name), _col("s", name)
        checks.append(
            (
                f"NOT {blank} AND {p} IS NULL AND {s} IS NULL",
                f"'not a timestamp (ISO 8601 or unix seconds): ' || {show}",
            )
        )
        checks.append(
            (
                f"NOT {blank} AND {t} IS NULL",
                f"{_literal(f'outside {_RANGE}')} || ' (got ' || {show} || ')'",
            )
        )
    return checks


def _batch_checks(columns: Mapping[str, str]) -> list[Check]:
    """Every check of a batch with ``columns``, in the order they apply."""
    out: list[Check] = []
    if ERROR in columns:
        field_sql = _q(ERROR_FIELD) if ERROR_FIELD in columns else "NULL"
        out.append((f"{_q(ERROR)} IS NOT NULL", f"NULLIF({field_sql}, '')", _q(ERROR)))
    for spec in field_specs():
        out += [(cond, _literal(spec.name), r) for cond, r in _checks(spec, spec.name in columns)]
    if "latency_s" in columns:
        latency, submitted = _col("t", "latency_s"), _col("t", "submitted_at")
        out.append(
            (
                f"round({latency} * 1e6) > epoch_us({_TS_HI}) - epoch_us({submitted})",
                _literal("latency_s"),
                _literal(f"submitted_at + latency_s is after {LATEST_TIME.isoformat()}")
                + f" || ' (got ' || CAST({latency} AS VARCHAR) || ' s)'",
            )
        )
    for rule in CROSS_FIELD_RULES:
        if rule.left in columns and rule.right in columns:
            left, right = _col("t", rule.left), _col("t", rule.right)
            reason = (
                f"'must be <= {rule.right} (' || CAST({left} AS VARCHAR) || ' > ' "
                f"|| CAST({right} AS VARCHAR) || ')'"
            )
            out.append((f"{left} > {right}", _literal(rule.left), reason))
    return out


def staging_sql(source: str, columns: Mapping[str, str]) -> str:
    """Build the SELECT that types and validates a raw batch.

    Args:
        source: Name of the registered raw relation.
        columns: Its columns mapped to an Arrow kind: ``"timestamp"``, ``"number"``
            or ``"other"``. Must include ``_line``.

    Returns:
        SQL selecting ``_idx``, ``_line``, every record field (typed, original names),
        ``_reject_field`` and ``_reject_reason``.
    """
    return _staging_sql(source, tuple(sorted(columns.items())))


@lru_cache(maxsize=256)
def _staging_sql(source: str, kinds: tuple[tuple[str, str], ...]) -> str:
    columns = dict(kinds)
    specs = field_specs()
    cast = [e for s in specs if s.name in columns for e in _cast_exprs(s, columns[s.name])]
    typed = [f"{_typed_expr(s, s.name in columns)} AS {_col('t', s.name)}" for s in specs]
    checks = _batch_checks(columns)
    number = " ".join(f"WHEN {cond} THEN {k}" for k, (cond, _, _) in enumerate(checks, 1))
    field = " ".join(f"WHEN {k} THEN {f}" for k, (_, f, _) in enumerate(checks, 1))
    reason = " ".join(f"WHEN {k} THEN {r}" for k, (_, _, r) in enumerate(checks, 1))
    outer = ", ".join(f"{_col('t', s.name)} AS {_q(s.name)}" for s in specs)
    layer1 = f"SELECT *{''.join(', ' + e for e in cast)} FROM {source}"
    layer2 = f"SELECT *, {', '.join(typed)} FROM ({layer1})"
    layer3 = f"SELECT *, CASE {number or 'WHEN FALSE THEN NULL'} END AS __k FROM ({layer2})"
    none = "WHEN -1 THEN NULL"
    return (
        f"SELECT _idx, CAST({_q(LINE)} AS BIGINT) AS _line, {outer}, "
        f"CAST(CASE __k {field or none} END AS VARCHAR) AS _reject_field, "
        f"CAST(CASE __k {reason or none} END AS VARCHAR) AS _reject_reason FROM ({layer3})"
    )


def unknown_columns(names: Iterable[str]) -> list[str]:
    """Columns of a raw batch that are neither record fields nor importer metadata."""
    allowed = {s.name for s in field_specs()} | {LINE, ERROR, ERROR_FIELD}
    return sorted(set(names) - allowed)
