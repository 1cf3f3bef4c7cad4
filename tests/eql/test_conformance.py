"""Elasticsearch's EQL spec suite (x-pack/plugin/eql/qa/common), run through Vigil.

Data loading follows the suite README's DataLoader notes and parsing caveats.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from vigil.eql.errors import EqlError
from vigil.eql.query import QueryOptions, compile_query
from vigil.eql.schema import Schema

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO.parent / "shared" / "conformance" / "elasticsearch-eql"

# file -> (data sets, tiebreaker, id field)
FILES = {
    "test_queries.toml": (("endgame-140",), "serial_event_id", "serial_event_id"),
    "additional_test_queries.toml": (("endgame-140",), "serial_event_id", "serial_event_id"),
    "test_queries_date.toml": (("endgame-140",), "serial_event_id", "serial_event_id"),
    "test_extra.toml": (("extra",), "sequence", "sequence"),
    "test_missing_events.toml": (("missing-events",), "sequence", "sequence"),
    "test_sample.toml": (("sample1", "sample2", "sample3"), None, "id"),
    "test_sample_multi.toml": (("sample-multi",), None, "id"),
}
# Active cases per file, as the suite README counts them.
EXPECTED_CASES = {
    "test_queries.toml": 133,
    "additional_test_queries.toml": 61,
    "test_queries_date.toml": 4,
    "test_extra.toml": 40,
    "test_missing_events.toml": 26,
    "test_sample.toml": 25,
    "test_sample_multi.toml": 9,
}
RESULTS: Counter = Counter()
TOTALS: Counter = Counter()


def _toml(path: Path) -> list[dict]:
    # Bare null in join_keys is not TOML 1.0; the ES runner compares it as "null".
    lines, in_keys = [], False
    for ln in path.read_text().splitlines():
        if re.match(r"\s*join_keys\s*=", ln):
            in_keys = True
        if in_keys:
            ln = re.sub(r"(?<![\w\"])null(?![\w\"])", '"null"', ln)
            if "]" in ln and ln.count("]") >= ln.count("[") - (0 if "join_keys" not in ln else 0):
                in_keys = not ln.rstrip().endswith(",") and "]" not in ln
        lines.append(ln)
    return tomllib.loads("\n".join(lines)).get("queries", [])


def _cases():
    if not SUITE.is_dir():
        return []
    out = []
    for fname in FILES:
        for q in _toml(SUITE / fname):
            out.append(pytest.param(fname, q, id=f"{fname}::{q['name']}"))
    return out


_DATA: dict = {}


def _mapping(name: str) -> dict:
    p = SUITE / "data" / f"{name}.mapping"
    lines = [ln for ln in p.read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = "\n".join(lines).replace("[runtime_random_keyword_type]", "keyword")
    m = json.loads(text)
    return m.get("mappings", m)


def _load(sets: tuple) -> tuple[list, Schema]:
    if sets in _DATA:
        return _DATA[sets]
    docs: list = []
    props: dict = {}
    for name in sets:
        if name == "endgame-140":
            raw = json.loads((SUITE / "test_data.json").read_text())
            for d in raw:
                d = dict(d)
                d["@timestamp"] = d["timestamp"] // 10_000 - 11_644_473_600_000
                docs.append(d)
        else:
            text = (SUITE / "data" / f"{name}.data").read_text()
            text = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("//"))
            docs.extend(json.loads(text))
        _merge(props, _mapping(name).get("properties", {}))
    for d in docs:
        _dynamic(props, d)
    result = (docs, Schema.from_mapping({"properties": props}))
    _DATA[sets] = result
    return result


def _merge(props: dict, more: dict) -> None:
    """Mappings of indices queried together. A date field whose format differs
    per index (sample1 ``dd-MM-yyyy``, sample2 ``yyyy-MM-dd``) reads either way."""
    for name, spec in more.items():
        have = props.get(name)
        if have is None:
            props[name] = spec
        elif "properties" in have and "properties" in spec:
            _merge(have["properties"], spec["properties"])
        elif have.get("type") == spec.get("type") == "date" and spec.get("format") != have.get("format"):
            formats = [f for f in (have.get("format"), spec.get("format")) if f]
            if len(formats) < 2:
                formats.append("strict_date_optional_time||epoch_millis")
            props[name] = {**have, "format": "||".join(formats)}
        else:
            props[name] = spec


def _dynamic_type(v) -> dict | None:
    # Elasticsearch's dynamic mapping: strings as text with a keyword sub-field.
    if isinstance(v, bool):
        return {"type": "boolean"}
    if isinstance(v, int):
        return {"type": "long"}
    if isinstance(v, float):
        return {"type": "float"}
    if isinstance(v, str):
        return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    return None


def _dynamic(props: dict, doc: dict) -> None:
    """Add fields no mapping names, as Elasticsearch's dynamic mapping would."""
    for key, value in doc.items():
        parts = key.split(".")
        node = props
        for part in parts[:-1]:
            entry = node.setdefault(part, {"properties": {}})
            node = entry.setdefault("properties", {})
        leaf = parts[-1]
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, dict):
                entry = node.setdefault(leaf, {"properties": {}})
                if "properties" in entry:
                    _dynamic(entry["properties"], v)
            elif leaf not in node and (t := _dynamic_type(v)):
                node[leaf] = t


def _key_str(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


@pytest.mark.parametrize(("fname", "spec"), _cases())
def test_spec(shared, fname: str, spec: dict) -> None:
    name = spec["name"]
    TOTALS[fname] += 1
    sets, tiebreaker, id_field = FILES[fname]
    docs, schema = _load(sets)
    opts = QueryOptions(
        tiebreaker_field=tiebreaker,
        size=spec.get("size", 50),
        max_samples_per_key=spec.get("max_samples_per_key", 1),
    )
    try:
        q = compile_query(spec["query"], schema=schema, options=opts)
    except EqlError as exc:
        pytest.fail(f"{name}: {exc}")
    matches = list(q.run(docs))
    got = [[-1 if e is None else e.get(id_field) for e in m.events] for m in matches]
    flat = [i for ids in got for i in ids]
    expected = spec.get("expected_event_ids", [])
    alternatives = expected if expected and isinstance(expected[0], list) else [expected]
    assert flat in alternatives, f"{name}: got {flat}"
    if "join_keys" in spec:
        keys = [_key_str(k) for m in matches for k in m.join_keys]
        assert keys == [_key_str(k) for k in spec["join_keys"]]
    RESULTS[fname] += 1


def test_every_case_is_collected(shared) -> None:
    """No case is lost by the loader (bare nulls, comments): 298 in all."""
    counts = Counter(p.values[0] for p in _cases())
    assert dict(counts) == EXPECTED_CASES
    assert sum(counts.values()) == 298


def test_zz_summary(capsys) -> None:
    """Pass count per file (printed; run with -s to see it): every case run passed."""
    with capsys.disabled():
        for fname in FILES:
            if TOTALS[fname]:
                print(f"\n{fname}: {RESULTS[fname]}/{TOTALS[fname]} passed")
    assert RESULTS == TOTALS
