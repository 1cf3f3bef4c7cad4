"""Elasticsearch's ``_bulk`` request body, read the way Elasticsearch reads it.

Action lines (``index``, ``create``) each followed by a source line. A bad
action line fails the whole request (400), as in Elasticsearch; a bad source
fails only its item, with the error ``type``/``reason`` shape Elasticsearch
returns per item.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from vigil.errors import VigilError
from vigil.events import vendors
from vigil.store.events import Write, WriteResult

SUPPORTED = ("index", "create")


class BulkRequestError(Exception):
    def __init__(self, reason: str, type_: str = "illegal_argument_exception") -> None:
        super().__init__(reason)
        self.reason = reason
        self.type = type_

    def body(self) -> dict:
        cause = {"type": self.type, "reason": self.reason}
        return {"error": {"root_cause": [cause], **cause}, "status": 400}


@dataclass(slots=True)
class Item:
    action: str
    index: str | None
    id: str | None
    write: Write | None = None  # None: the item failed before storing
    status: int = 0
    error: dict | None = None


def parse_bulk(body: bytes, default_index: str | None) -> list[Item]:
    lines = body.split(b"\n")
    items: list[Item] = []
    i = 0
    while i < len(lines):
        raw = lines[i].strip()
        i += 1
        if not raw:
            continue
        try:
            action_line = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BulkRequestError(
                f"Malformed action/metadata line [{i}]: {exc}", "x_content_parse_exception"
            ) from None
        if not isinstance(action_line, dict) or len(action_line) != 1:
            raise BulkRequestError(
                f"Malformed action/metadata line [{i}], expected a single object naming the action"
            )
        action, meta = next(iter(action_line.items()))
        if not isinstance(meta, dict):
            raise BulkRequestError(f"Malformed action/metadata line [{i}], expected START_OBJECT")
        if action not in ("index", "create", "update", "delete"):
            raise BulkRequestError(
                f"Malformed action/metadata line [{i}], expected one of [create, delete, index, update] "
                f"but found [{action}]"
            )
        index = meta.get("_index") or default_index
        doc_id = meta.get("_id")
        doc_id = str(doc_id) if doc_id is not None else None
        item = Item(action, index, doc_id)
        items.append(item)
        if action == "delete":
            item.status, item.error = (
                400,
                _err("illegal_argument_exception", "vigil keeps events: delete is not supported"),
            )
            continue
        # every other action carries a source line
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i >= len(lines):
            raise BulkRequestError("The bulk request must be terminated by a newline [\\n]")
        source = lines[i].strip()
        i += 1
        if action == "update":
            item.status, item.error = (
                400,
                _err("illegal_argument_exception", "vigil keeps events: update is not supported"),
            )
            continue
        if not index:
            item.status, item.error = (
                400,
                _err("action_request_validation_exception", "Validation Failed: 1: index is missing;"),
            )
            continue
        if index.startswith(("_", "-", "+")) or index != index.lower():
            item.status, item.error = (
                400,
                _err("invalid_index_name_exception", f"Invalid index name [{index}]"),
            )
            continue
        try:
            doc = orjson.loads(source)
        except orjson.JSONDecodeError as exc:
            item.status, item.error = 400, _err("document_parsing_exception", f"[1:1] failed to parse: {exc}")
            continue
        if not isinstance(doc, dict):
            item.status, item.error = (
                400,
                _err("document_parsing_exception", "[1:1] source is not a JSON object"),
            )
            continue
        try:
            index, doc = as_ecs(index, doc)
        except VigilError as exc:
            item.status, item.error = 400, _err("document_parsing_exception", exc.message)
            continue
        item.index = index
        item.write = Write(index, doc, doc_id, "create" if action == "create" else "index")
    return items


def as_ecs(index: str, doc: dict) -> tuple[str, dict]:
    """A raw vendor event (SentinelOne Cloud Funnel, legacy Endgame) as the ECS document its
    Elastic integration would index, and the data stream that integration routes it to;
    ECS documents pass as they are, in the index they were sent to."""
    ecs, vendor_index = vendors.normalize(doc)
    return vendor_index or index, ecs


def _err(type_: str, reason: str) -> dict:
    return {"type": type_, "reason": reason}


def bulk_response(items: list[Item], results: list[WriteResult], took_ms: int) -> dict:
    """Elasticsearch's bulk response: ``took``, ``errors``, one ``items`` entry per action.

    HTTP 200 even when items failed; each failed item has its ``status`` and an
    ``error`` {type, reason} (shape as in the Elasticsearch bulk API reference).
    """
    out = []
    written = iter(results)
    errors = False
    for seq, item in enumerate(items):
        if item.write is not None:
            r = next(written)
            item.id, item.status, item.error = r.id, r.status, r.error
            result = r.result
        else:
            result = None
        entry: dict = {"_index": item.index, "_id": item.id, "status": item.status}
        if item.error:
            errors = True
            entry["error"] = item.error
        else:
            entry.update(
                {
                    "_version": 1,
                    "result": result,
                    "_shards": {"total": 1, "successful": 1, "failed": 0},
                    "_seq_no": seq,
                    "_primary_term": 1,
                }
            )
        out.append({item.action: entry})
    return {"took": took_ms, "errors": errors, "items": out}


def parse_ndjson(body: bytes, index: str) -> tuple[list[Write], list[dict]]:
    """Plain NDJSON (one document a line): the writes, and an error per bad line."""
    writes, errors = [], []
    for n, raw in enumerate(body.split(b"\n"), 1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            errors.append({"line": n, "column": getattr(exc, "colno", 1), "reason": str(exc)})
            continue
        if not isinstance(doc, dict):
            errors.append({"line": n, "column": 1, "reason": "not a JSON object"})
            continue
        try:
            target, doc = as_ecs(index, doc)
        except VigilError as exc:
            errors.append({"line": n, "column": 1, "reason": exc.message})
            continue
        writes.append(Write(target, doc))
    return writes, errors
