"""Elasticsearch's ``_bulk`` request body, read the way Elasticsearch reads it.

Action lines (``index``, ``create``) each followed by a source line. A bad
action line fails the whole request (400), as in Elasticsearch; a bad source
fails only its item, with the error ``type``/``reason`` shape Elasticsearch
returns per item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from vigil.errors import VigilError
from vigil.events import vendors
from vigil.events.documents import TIME_FIELDS, DocumentError, check_document
from vigil.server.names import InvalidIndexName, validate_index_name
from vigil.store.events import Write, WriteResult

SUPPORTED = ("index", "create")
MAX_ID_BYTES = 512  # IndexRequest.validate: "id is too long, must be no longer than 512 bytes"
MAX_REPORTED_ERRORS = 100  # an NDJSON answer names this many bad lines, then counts the rest


class BulkRequestError(DocumentError):
    """A bulk body that cannot be read at all: the whole request fails (400)."""

    def __init__(self, reason: str, type_: str = "illegal_argument_exception") -> None:
        super().__init__(reason, type_)

    def body(self) -> dict:
        cause = self.error()
        return {"error": {"root_cause": [cause], **cause}, "status": 400}


@dataclass(slots=True)
class Item:
    action: str
    index: str | None
    id: str | None
    write: Write | None = None  # None: the item failed before storing
    status: int = 0
    error: dict | None = None

    def fail(self, status: int, type_: str, reason: str) -> None:
        self.status, self.error = status, _err(type_, reason)


def parse_bulk(
    body: bytes, default_index: str | None, time_fields: Iterable[str] = TIME_FIELDS
) -> list[Item]:
    """The items of a bulk body. A malformed action line fails the request
    (:class:`BulkRequestError`); anything wrong with one document fails that item only."""
    lines = body.split(b"\n")
    items: list[Item] = []
    i = 0
    while i < len(lines):
        raw = lines[i].strip()
        i += 1
        if not raw:
            continue
        action, meta = _action(raw, i)
        index = _simple(meta, "_index", i) or default_index
        doc_id = _simple(meta, "_id", i)
        item = Item(action, index, doc_id)
        items.append(item)
        if action == "delete":
            item.fail(400, "illegal_argument_exception", "vigil keeps events: delete is not supported")
            continue
        # every other action carries a source line
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i >= len(lines):
            raise BulkRequestError("The bulk request must be terminated by a newline [\\n]")
        source = lines[i].strip()
        i += 1
        if action == "update":
            item.fail(400, "illegal_argument_exception", "vigil keeps events: update is not supported")
            continue
        source_item(item, source, time_fields)
    return items


def _action(raw: bytes, line: int) -> tuple[str, dict]:
    try:
        action_line = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BulkRequestError(
            f"Malformed action/metadata line [{line}]: {_clip(str(exc))}", "x_content_parse_exception"
        ) from None
    if not isinstance(action_line, dict) or len(action_line) != 1:
        raise BulkRequestError(
            f"Malformed action/metadata line [{line}], expected a single object naming the action"
        )
    action, meta = next(iter(action_line.items()))
    if not isinstance(meta, dict):
        raise BulkRequestError(f"Malformed action/metadata line [{line}], expected START_OBJECT")
    if action not in ("index", "create", "update", "delete"):
        raise BulkRequestError(
            f"Malformed action/metadata line [{line}], expected one of [create, delete, index, update] "
            f"but found [{_clip(str(action))}]"
        )
    return action, meta


def _simple(meta: dict, name: str, line: int) -> str | None:
    """A metadata value as Elasticsearch's bulk parser reads it: the text of a scalar
    (``"_index": 5`` names index ``5``); an array or object fails the request
    (``BulkRequestParser``: "expected a simple value for field")."""
    value = meta.get(name)
    if value is None:
        return None
    if isinstance(value, dict | list):
        token = "START_OBJECT" if isinstance(value, dict) else "START_ARRAY"
        raise BulkRequestError(
            f"Malformed action/metadata line [{line}], expected a simple value for field [{name}] "
            f"but found [{token}]"
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def source_item(item: Item, source: bytes, time_fields: Iterable[str]) -> None:
    """Fill ``item.write``, or its error: nothing about one document fails the others."""
    if not item.index:
        item.fail(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
        return
    try:
        validate_index_name(item.index)
    except InvalidIndexName as exc:
        item.status, item.error = 400, exc.error()
        return
    if item.id is not None and len(item.id.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        item.fail(
            400,
            "action_request_validation_exception",
            f"Validation Failed: 1: id is too long, must be no longer than {MAX_ID_BYTES} bytes;",
        )
        return
    try:
        doc = orjson.loads(source)
    except orjson.JSONDecodeError as exc:
        item.fail(400, "document_parsing_exception", f"[1:1] failed to parse: {_clip(str(exc))}")
        return
    if not isinstance(doc, dict):
        item.fail(400, "document_parsing_exception", "[1:1] source is not a JSON object")
        return
    try:
        check_document(doc, time_fields)
        index, doc = as_ecs(item.index, doc)
        check_document(doc, time_fields)  # what a normalizer made is held to the same rules
        validate_index_name(index)
    except DocumentError as exc:
        item.status, item.error = 400, exc.error()
        return
    except InvalidIndexName as exc:
        item.status, item.error = 400, exc.error()
        return
    except VigilError as exc:
        item.fail(400, "document_parsing_exception", _clip(exc.message))
        return
    item.index = index
    item.write = Write(index, doc, item.id, "create" if item.action == "create" else "index")


def as_ecs(index: str, doc: dict) -> tuple[str, dict]:
    """A raw vendor event (SentinelOne Cloud Funnel, legacy Endgame) as the ECS document its
    Elastic integration would index, and the data stream that integration routes it to;
    ECS documents pass as they are, in the index they were sent to."""
    try:
        ecs, vendor_index = vendors.normalize(doc)
    except VigilError:
        raise
    except Exception as exc:  # a hostile vendor event costs that event, never the request
        raise VigilError(f"unreadable vendor event ({type(exc).__name__})") from None
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


def parse_ndjson(
    body: bytes, index: str, time_fields: Iterable[str] = TIME_FIELDS
) -> tuple[list[Write], list[dict], int]:
    """Plain NDJSON (one document a line): the writes, the first
    :data:`MAX_REPORTED_ERRORS` bad lines (line, column, reason), and how many lines were bad."""
    validate_index_name(index)
    writes: list[Write] = []
    errors: list[dict] = []
    bad = 0

    def fail(line: int, column: int, reason: str) -> None:
        nonlocal bad
        bad += 1
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.append({"line": line, "column": column, "reason": _clip(reason)})

    for n, raw in enumerate(body.split(b"\n"), 1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            fail(n, getattr(exc, "colno", 1), str(exc))
            continue
        if not isinstance(doc, dict):
            fail(n, 1, "not a JSON object")
            continue
        try:
            check_document(doc, time_fields)
            target, doc = as_ecs(index, doc)
            check_document(doc, time_fields)
            validate_index_name(target)
        except (DocumentError, InvalidIndexName) as exc:
            fail(n, 1, str(exc))
            continue
        except VigilError as exc:
            fail(n, 1, exc.message)
            continue
        if not bad:  # one bad line refuses the request: keep checking, stop keeping documents
            writes.append(Write(target, doc))
    return ([] if bad else writes), errors, bad


def _clip(text: str, limit: int = 500) -> str:
    """Error text sent back is bounded: a reason never echoes a whole hostile value."""
    return text if len(text) <= limit else text[:limit] + "..."
