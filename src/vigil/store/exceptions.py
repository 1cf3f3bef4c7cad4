"""Rule exceptions added in ``vigil serve``'s pages, kept in the store file.

Each rule gets its own list, as Kibana's "Add rule exception" writes to the rule's
default list (``type: rule_default``). An item holds Kibana's entries (``match`` for
one value, ``match_any`` for several), so it exports unchanged in Kibana's
exception-list NDJSON (``export_exception_list_and_items.ts`` in Kibana's lists
plugin: the list, its items, then a line of counts) and is read back by
:func:`vigil.rules.exceptions.parse_exceptions`.

:class:`RuleExceptions` is what the engine asks on each run (``for_rule``): the items
of an ``--exceptions`` file plus the rule's stored items, read afresh, so an item
added or removed applies to the rule's next run.
"""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from vigil.errors import VigilError
from vigil.rules.exceptions import ExceptionItem, _entry
from vigil.store.db import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exception_items (
    item_id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS exception_items_rule ON exception_items(rule_id, created_ms);
"""

MAX_ENTRIES = 20


def list_id_for(rule_id: str) -> str:
    """The list id of a rule's own exceptions."""
    return f"vigil-rule-default-{rule_id}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def entries_for(fields: list[tuple[str, Any]]) -> list[dict]:
    """Kibana entries for the chosen (field, value) pairs: a list is ``match_any``, else ``match``."""
    out = []
    for name, value in fields:
        if isinstance(value, list):
            values = [v for v in value if isinstance(v, str | int | float | bool)]
            if not values:
                continue
            out.append(
                {
                    "field": name,
                    "type": "match_any",
                    "operator": "included",
                    "value": [str(v) if not isinstance(v, bool) else str(v).lower() for v in values],
                }
            )
        elif isinstance(value, str | int | float | bool):
            text = str(value).lower() if isinstance(value, bool) else str(value)
            out.append({"field": name, "type": "match", "operator": "included", "value": text})
    return out


class ExceptionStore:
    """The ``exception_items`` table. Safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._conn = connect(path)
            self._conn.executescript(_SCHEMA)
        except Exception as exc:  # sqlite3.DatabaseError and friends
            raise VigilError(f"not a Vigil store: {exc}", file=str(path)) from None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    def add(self, rule_id: str, rule_name: str, entries: list[dict], *, comment: str = "") -> dict:
        """Store one item (entries as Kibana writes them); returns it."""
        if not entries:
            raise VigilError("choose at least one field with a value for the exception")
        if len(entries) > MAX_ENTRIES:
            raise VigilError(f"an exception takes at most {MAX_ENTRIES} fields")
        for entry in entries:
            try:
                _entry(entry)
            except ValueError as exc:
                raise VigilError(f"bad exception entry: {exc}") from None
        now = _now_ms()
        item_id = secrets.token_hex(16)
        item = {
            "comments": [{"comment": comment[:1000]}] if comment else [],
            "created_at": _iso(now),
            "created_by": "vigil",
            "description": f"Exception added to {rule_name}"[:1000],
            "entries": entries,
            "id": item_id,
            "item_id": item_id,
            "list_id": list_id_for(rule_id),
            "name": f"{rule_name} exception"[:1000],
            "namespace_type": "single",
            "os_types": [],
            "tags": [],
            "tie_breaker_id": item_id,
            "type": "simple",
            "updated_at": _iso(now),
            "updated_by": "vigil",
        }
        with self._lock:
            self._conn.execute(
                "INSERT INTO exception_items (item_id, rule_id, created_ms, doc) VALUES (?,?,?,?)",
                (item_id, rule_id, now, orjson.dumps(item).decode()),
            )
        return item

    def remove(self, item_id: str) -> bool:
        with self._lock:
            cur = self._conn.execute("DELETE FROM exception_items WHERE item_id = ?", (item_id,))
        return cur.rowcount > 0

    def items(self, rule_id: str | None = None) -> list[dict]:
        """Items oldest first, each with its ``rule_id`` beside Kibana's fields (``_rule_id``)."""
        sql = "SELECT rule_id, doc FROM exception_items"
        params: tuple = ()
        if rule_id is not None:
            sql += " WHERE rule_id = ?"
            params = (rule_id,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_ms, item_id", params).fetchall()
        return [dict(orjson.loads(doc), _rule_id=rid) for rid, doc in rows]

    def count(self, rule_id: str) -> int:
        with self._lock:
            return self._conn.execute(
                "SELECT COUNT(*) FROM exception_items WHERE rule_id = ?", (rule_id,)
            ).fetchone()[0]

    def export(self, rules: dict[str, Any]) -> bytes:
        """Every rule's list and items in Kibana's exception-list export NDJSON."""
        items = self.items()
        by_rule: dict[str, list[dict]] = {}
        for item in items:
            by_rule.setdefault(item.pop("_rule_id"), []).append(item)
        lines = []
        for rid, rule_items in by_rule.items():
            rule = rules.get(rid)
            name = getattr(rule, "name", rid)
            list_id = list_id_for(rid)
            first = rule_items[0]
            lines.append(
                {
                    "_version": "WzEsMV0=",
                    "created_at": first["created_at"],
                    "created_by": "vigil",
                    "description": f"Exceptions of the rule {name}",
                    "id": list_id,
                    "immutable": False,
                    "list_id": list_id,
                    "name": f"Exceptions List [{name}]",
                    "namespace_type": "single",
                    "os_types": [],
                    "tags": ["default_rule_exception_list"],
                    "tie_breaker_id": list_id,
                    "type": "rule_default",
                    "updated_at": rule_items[-1]["updated_at"],
                    "updated_by": "vigil",
                    "version": 1,
                }
            )
            lines.extend(rule_items)
        lines.append(
            {
                "exported_exception_list_count": len(by_rule),
                "exported_exception_list_item_count": len(items),
                "missing_exception_list_item_count": 0,
                "missing_exception_list_items": [],
                "missing_exception_lists": [],
                "missing_exception_lists_count": 0,
            }
        )
        return b"".join(orjson.dumps(line) + b"\n" for line in lines)


class RuleExceptions:
    """The exceptions one engine applies: an ``--exceptions`` file's and the stored ones.

    Made afresh for each run (see :func:`engine_factory`), it reads a rule's stored items
    once, so an item added or removed applies from the rule's next run on.
    """

    def __init__(self, store: ExceptionStore, base: Any = None, base_all: bool = False) -> None:
        self.store = store
        self.base = base
        self.base_all = base_all
        self.text = None  # never shipped to Spark executors
        self._items: dict[str, list[ExceptionItem]] = {}

    def for_rule(self, rule: Any, all_rules: bool = False) -> list[ExceptionItem]:
        rid = str(getattr(rule, "rule_id", ""))
        if rid not in self._items:
            out = list(self.base.for_rule(rule, all_rules=self.base_all)) if self.base is not None else []
            for raw in self.store.items(rid):
                try:
                    entries = [_entry(e) for e in raw["entries"]]
                except (ValueError, KeyError, TypeError):
                    continue  # an item this version cannot read never suppresses
                out.append(
                    ExceptionItem(raw["item_id"], raw["list_id"], "single", raw.get("name", ""), entries, raw)
                )
            self._items[rid] = out
        return self._items[rid]


def engine_factory(store: ExceptionStore, base: Any = None, base_all: bool = False) -> Any:
    """A scheduler engine factory whose engines apply ``base`` and the stored items."""

    def make(rules: list[Any], now: datetime) -> Any:
        from vigil.engine import Engine

        return Engine(rules, exceptions=RuleExceptions(store, base, base_all), now=now)

    return make
