"""Parquet inputs: every row of a file as an event, read through DuckDB.

Each row is one event document. DuckDB returns a STRUCT column as a dict and a
LIST as a list; NULL members are dropped (and objects left empty by that), so a
row looks like the JSON it was written from. Timestamps, dates, decimals and
UUIDs become the JSON values they print as. A JSON-typed column (what DuckDB
infers for a field holding different shapes, such as a string in one event and a
list in another) holds JSON text, which is decoded back into the values it
stands for. Rows then take the same road as
JSON events (:mod:`vigil.events.readers`): vendor detection and the event's
index (``--index``, else ``data_stream.type-dataset-namespace``).

The columnar scan that lets DuckDB filter rows by each rule's SQL form is the
engine's (:mod:`vigil.engine.columnar`); this module only reads.

DuckDB is an optional dependency (``pip install vigil[parquet]``).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vigil.eql import sql as eqlsql
from vigil.errors import VigilError
from vigil.events.model import Event
from vigil.events.readers import Reader, ReadStats

BATCH = 2048
_DS_KEYS = ("type", "dataset", "namespace")


def _duckdb():
    try:
        import duckdb
    except ImportError:
        raise VigilError(
            "reading Parquet needs DuckDB: pip install 'vigil[parquet]' (or pip install duckdb)"
        ) from None
    return duckdb


# --- rows as documents -----------------------------------------------------------------


def to_json_value(value: Any) -> Any:
    """A DuckDB value as the JSON value it stands for: NULL members dropped, objects
    that only held NULLs dropped, timestamps as ISO 8601 text."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v is None:
                continue
            if type(v) is not str:
                v = to_json_value(v)
                if v is None:
                    continue
            out[k] = v
        return out or None
    if isinstance(value, list):
        return [to_json_value(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.UTC).replace(tzinfo=None)
        text = value.isoformat(timespec="milliseconds" if value.microsecond % 1000 == 0 else "microseconds")
        return text + "Z"
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    return str(value)


Decoder = Callable[[Any], Any]


def _json_text(text: Any) -> Any:
    """The value a JSON column's text stands for; text that is not JSON stays text."""
    if not isinstance(text, str):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text)  # integers beyond 64 bits, which orjson refuses
    except (ValueError, RecursionError):
        return text


def _is_json(t) -> bool:
    return t.id == "varchar" and str(t).upper() == "JSON"


def decoder(t) -> Decoder | None:
    """What turns a DuckDB value of type ``t`` whose members include JSON text into
    plain values, or None when nothing in ``t`` is JSON."""
    if _is_json(t):
        return _json_text
    if t.id == "list":
        inner = decoder(t.children[0][1])
        if inner is None:
            return None
        return lambda v: [None if x is None else inner(x) for x in v]
    if t.id == "struct":
        inner_of = {name: d for name, child in t.children if (d := decoder(child)) is not None}
        if not inner_of:
            return None
        return lambda v: {k: x if x is None or k not in inner_of else inner_of[k](x) for k, x in v.items()}
    return None


def row_document(names: list[str], row: tuple, decoders: list[Decoder | None] | None = None) -> dict:
    """One row as an event document (see :func:`to_json_value`); ``decoders``
    (:attr:`ParquetFile.decoders`) turn JSON-typed columns into their values."""
    doc = {}
    for k, (name, value) in enumerate(zip(names, row, strict=True)):
        if value is None:
            continue
        if decoders is not None and decoders[k] is not None:
            value = decoders[k](value)
            if value is None:
                continue
        if type(value) is not str:
            value = to_json_value(value)
        if value is not None:
            doc[name] = value
    return doc


# --- the file's columns ----------------------------------------------------------------------


def _sql_type(t) -> eqlsql.SqlType:
    kind = t.id
    if str(t).upper() != "VARCHAR" and kind == "varchar":
        return eqlsql.OTHER  # JSON and other aliases of text: held as text, not as their values
    if kind == "struct":
        return eqlsql.SqlType.struct({name: _sql_type(child) for name, child in t.children})
    if kind == "list":
        return eqlsql.SqlType.list_of(_sql_type(t.children[0][1]))
    if kind == "varchar":
        return eqlsql.STRING
    if kind in ("bigint", "integer", "smallint", "tinyint", "ubigint", "uinteger", "usmallint", "utinyint"):
        return eqlsql.INTEGER
    if kind in ("double", "float"):
        return eqlsql.FLOAT
    if kind == "boolean":
        return eqlsql.BOOLEAN
    return eqlsql.OTHER


def _json_members(t, name: str, out: set[str]) -> None:
    while t.id == "list":
        t = t.children[0][1]
    if _is_json(t):
        out.add(name)
    elif t.id == "struct":
        for child_name, child in t.children:
            _json_members(child, f"{name}.{child_name}", out)


def _source(path: str) -> str:
    return "read_parquet(" + eqlsql.Generator({}).string(path) + ", file_row_number = true)"


@dataclass
class ParquetFile:
    """One Parquet file open in DuckDB: its columns as the SQL generator sees them."""

    path: str
    con: Any
    names: list[str] = field(default_factory=list)
    columns: dict[str, eqlsql.SqlType] = field(default_factory=dict)
    # Per column, what decodes its JSON-typed members (None: nothing to decode).
    decoders: list[Decoder | None] = field(default_factory=list)
    # Dotted names of the JSON-typed members (lists passed through): SQL cannot see
    # into their values, so rules reading them run in Python.
    json_fields: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, path: str | Path, con=None) -> ParquetFile:
        duckdb = _duckdb()
        path = str(path)
        con = con or duckdb.connect()
        try:
            rel = con.sql(f"SELECT * FROM {_source(path)} LIMIT 0")
        except duckdb.Error as exc:
            raise VigilError(f"cannot read Parquet file: {str(exc).splitlines()[0]}", file=path) from None
        names = [n for n in rel.columns if n != "file_row_number"]
        types = dict(zip(rel.columns, rel.types, strict=True))
        json_fields: set[str] = set()
        for n in names:
            _json_members(types[n], n, json_fields)
        return cls(
            path,
            con,
            names,
            {n: _sql_type(types[n]) for n in names},
            [decoder(types[n]) for n in names],
            json_fields,
        )

    def document(self, values: tuple) -> dict:
        """One row's values as an event document."""
        return row_document(self.names, values, self.decoders)

    @property
    def select_list(self) -> str:
        return ", ".join(eqlsql.Generator({}).quote(n) for n in self.names)

    def rows(self, where: str = "TRUE", extra: str = "") -> Iterator[tuple[int, tuple]]:
        """(row number, values) of the rows meeting ``where``, in file order."""
        sel = self.select_list + (", " + extra if extra else "")
        cur = self.con.execute(
            f"SELECT file_row_number, {sel} FROM {_source(self.path)} WHERE {where} ORDER BY file_row_number"
        )
        while True:
            chunk = cur.fetchmany(BATCH)
            if not chunk:
                return
            for row in chunk:
                yield row[0], row[1:]

    def plain_shape(self) -> str | None:
        """Why rows cannot be filtered column by column (vendor events to normalize,
        search hits to unwrap), or None when every row is an ECS document as it is."""
        cols = set(self.names)
        if "_source" in cols or "hits" in cols or {"_index", "_id"} <= cols:
            return "search hits"
        if "meta.event.name" in cols or any(
            n.startswith(("src.process.", "tgt.file.", "tgt.process.")) for n in cols
        ):
            return "SentinelOne events"
        if "endgame" in cols or ("event_type" in cols and ({"serial_event_id", "timestamp"} & cols)):
            return "Endgame events"
        return None


# --- the plain path ----------------------------------------------------------------------------


def read_parquet(
    path: str | Path,
    *,
    index: str | None = None,
    source: str | None = None,
    stats: ReadStats | None = None,
) -> Iterator[Event]:
    """Every row of a Parquet file as an event, as :func:`vigil.events.readers.read_inputs`
    makes events of JSON documents (origin ``file:row``, rows counted from 1)."""
    stats = stats if stats is not None else ReadStats()
    try:
        pf = ParquetFile.open(path)
    except VigilError as exc:
        stats.file_failed(exc.message, str(path))
        return
    reader = Reader(index, source, stats)
    for n, values in pf.rows():
        yield from reader.make(pf.document(values), pf.path, n + 1)


# --- the columnar scan -----------------------------------------------------------------------
