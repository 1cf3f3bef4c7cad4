"""Kibana exception lists: load the export NDJSON, match items against alert source documents.

Kibana turns an item into an Elasticsearch filter: match -> term (case-sensitive on
keyword), match_any -> terms, wildcard -> wildcard query, exists -> exists, nested ->
nested query over an array of objects; operator "excluded" negates the entry. An item
suppresses an alert when all of its entries match.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.eql.ecs import ecs_type
from vigil.eql.fields import lookup
from vigil.eql.semantics import ip_bounds, ip_key
from vigil.errors import VigilError
from vigil.lucene.wildcard import compile_wildcard

ENTRY_TYPES = ("match", "match_any", "wildcard", "exists", "nested", "list")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _wildcard(pattern: str, value: str) -> bool:
    # `*` and `?`, every other character plain, case-sensitive; linear in the value.
    return compile_wildcard(pattern)(value)


def _ip_match(texts: list[str], wanted: list) -> bool:
    keys = [k for k in (ip_key(t.strip()) for t in texts) if k is not None]
    for w in wanted:
        bounds = ip_bounds(_as_text(w))
        if bounds is not None and any(bounds[0] <= k <= bounds[1] for k in keys):
            return True
    return False


@dataclass
class Entry:
    field: str
    type: str
    operator: str = "included"
    value: Any = None
    entries: list[Entry] = field(default_factory=list)

    def matches(self, doc: dict) -> bool:
        hit = self._hit(doc)
        return not hit if self.operator == "excluded" else hit

    def _hit(self, doc: dict) -> bool:
        if self.type == "nested":
            parents = [p for p in lookup(doc, self.field) if isinstance(p, dict)]
            if not parents:
                # lookup returns leaves; fall back to walking the raw object.
                raw = doc
                for part in self.field.split("."):
                    raw = raw.get(part) if isinstance(raw, dict) else None
                parents = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
            # nested query: one object must satisfy every sub-entry
            return any(all(e.matches(p) for e in self.entries) for p in parents if isinstance(p, dict))
        values = [v for v in lookup(doc, self.field) if v is not None]
        if self.type == "exists":
            return bool(values)
        texts = [_as_text(v) for v in values]
        if self.type in ("match", "match_any") and ecs_type(self.field) == "ip":
            # Kibana's match_phrase on an ip field is a term query on 16-byte addresses
            # (IpFieldMapper.termQuery): ::ffff:10.1.2.3 is 10.1.2.3, and a CIDR block works.
            return _ip_match(texts, [self.value] if self.type == "match" else (self.value or []))
        if self.type == "match":
            return _as_text(self.value) in texts
        if self.type == "match_any":
            wanted = {_as_text(v) for v in (self.value or [])}
            return any(t in wanted for t in texts)
        if self.type == "wildcard":
            return any(_wildcard(_as_text(self.value), t) for t in texts)
        return False  # value lists are not loaded: never suppress


@dataclass
class ExceptionItem:
    item_id: str
    list_id: str
    namespace_type: str = "single"
    name: str = ""
    entries: list[Entry] = field(default_factory=list)
    raw: dict = field(default_factory=dict, repr=False)

    def matches(self, doc: dict) -> bool:
        """True when the alert is suppressed: every entry matches."""
        return bool(self.entries) and all(e.matches(doc) for e in self.entries)


@dataclass
class ExceptionLists:
    lists: dict[tuple[str, str], dict] = field(default_factory=dict)
    items: list[ExceptionItem] = field(default_factory=list)
    problems: list[VigilError] = field(default_factory=list)
    skipped: int = 0
    # (file name, text) when read from a file: parse_exceptions rebuilds the lists elsewhere.
    text: tuple[str, str] | None = None

    def for_rule(self, rule: Any, all_rules: bool = False) -> list[ExceptionItem]:
        if all_rules:
            return list(self.items)
        refs = {
            (ref.get("list_id"), ref.get("namespace_type", "single"))
            for ref in (getattr(rule, "exceptions_list", None) or [])
            if isinstance(ref, dict)
        }
        return [i for i in self.items if (i.list_id, i.namespace_type) in refs]

    def counts(self) -> Counter:
        return Counter(i.list_id for i in self.items)


def _entry(data: Any) -> Entry:
    if not isinstance(data, dict):
        raise ValueError("an entry must be an object")
    kind = data.get("type")
    if kind not in ENTRY_TYPES:
        raise ValueError(f"unknown entry type {kind!r}")
    name = data.get("field")
    if not isinstance(name, str) or not name:
        raise ValueError("an entry needs a field")
    operator = data.get("operator", "included")
    if operator not in ("included", "excluded"):
        raise ValueError(f"unknown operator {operator!r}")
    if kind == "nested":
        subs = data.get("entries")
        if not isinstance(subs, list) or not subs:
            raise ValueError("a nested entry needs entries")
        return Entry(name, kind, operator, entries=[_entry(s) for s in subs])
    if kind == "match_any" and not isinstance(data.get("value"), list):
        raise ValueError("match_any needs a list value")
    if kind in ("match", "wildcard") and data.get("value") is None:
        raise ValueError(f"{kind} needs a value")
    return Entry(name, kind, operator, data.get("value"))


def load_exceptions(path: str | Path) -> ExceptionLists:
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VigilError(f"cannot read exception lists: {exc}", file=name) from None
    return parse_exceptions(text, name)


def parse_exceptions(text: str, name: str) -> ExceptionLists:
    """Exception lists of a Kibana export's text (``name`` is where problems point)."""
    out = ExceptionLists(text=(name, text))
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("a line must be a JSON object")
            if "exported_exception_list_count" in data or "exported_count" in data:
                continue  # export summary
            list_id = data.get("list_id")
            if not isinstance(list_id, str):
                raise ValueError("missing list_id")
            ns = data.get("namespace_type", "single")
            if "item_id" in data:
                entries = data.get("entries")
                if not isinstance(entries, list) or not entries:
                    raise ValueError("an item needs entries")
                out.items.append(
                    ExceptionItem(
                        str(data["item_id"]),
                        list_id,
                        ns,
                        str(data.get("name", "")),
                        [_entry(e) for e in entries],
                        data,
                    )
                )
            else:
                out.lists[(list_id, ns)] = data
        except json.JSONDecodeError as exc:
            out.problems.append(
                VigilError(f"invalid JSON: {exc.msg}", file=name, line=number, column=exc.colno)
            )
            out.skipped += 1
        except ValueError as exc:
            out.problems.append(VigilError(str(exc), file=name, line=number))
            out.skipped += 1
    return out
