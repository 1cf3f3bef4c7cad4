"""Count the prebuilt rules for Elastic Defend on Linux that `vigil watch`'s sensor can feed.

The rules: those of elastic/detection-rules (``rules/`` and ``rules_building_block/``, without
``_deprecated``) that read ``logs-endpoint.events.*`` (their ``index``, or an ES|QL ``FROM``)
and target Linux (in ``rules/linux/``, or tagged ``OS: Linux`` with a ``host.os.type`` test
that names ``linux``).

A rule is fed when its query names no field and needs no ``event.action`` the sensor does not
give (``MISSING_FIELDS``, ``GIVEN_ACTIONS``): field names are read from the query with its
quoted strings and comments taken out, so a value such as ``"checkip.dyndns.org"`` is not a
field. Each ``event.action`` test must allow one action the sensor gives (a test for auditd's or
CloudTrail's actions only is a part the sensor cannot feed), and a test for ``event.outcome``
"success" is one too (Defend's Linux file events say "unknown"). Categories are those the query can match (EQL's ``process where``, or
``event.category`` values, or the endpoint index it reads).

    python tools/sensor_coverage.py DETECTION_RULES [--list] [--events EVENTS.ndjson]

``--events``: also list the fields the rules name that no event of that file (``vigil watch
--events-out``) carries, to keep ``MISSING_FIELDS`` honest.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections import Counter
from pathlib import Path

# What the sensor cannot give (docs/sensor.md, "What it cannot give yet").
MISSING_FIELDS = re.compile(
    r"(?<![\w.])(?:"
    r"process\.(?:parent\.)?title"
    r"|(?:process|process\.parent|dll|file)\.code_signature\.\w+(?:\.\w+)*"
    r"|process\.(?:parent\.)?Ext\.(?!ancestry\b)\w+(?:\.\w+)*"
    r"|process\.(?:parent\.)?hash\.\w+"
    r"|container\.\w+(?:\.\w+)*"
    r"|orchestrator\.\w+(?:\.\w+)*"
    r"|process\.entry_leader\.entry_meta\.source\.ip"
    r"|host\.ip"
    r"|dns\.(?!question\.(?:name|type)\b)\w+(?:\.\w+)*"
    r")"
)
# Defend's Linux actions the sensor gives.
GIVEN_ACTIONS = {
    "exec", "fork", "end", "uid_change", "gid_change", "session_id_change", "already_running",
    "connection_attempted", "connection_accepted", "disconnect_received", "lookup_requested",
    "creation", "modification", "rename", "deletion",
}  # fmt: skip

_OS_TEST = re.compile(r"host\.os\.type\s*(?:==|:|in|like~?)\s*(\([^)]*\)|\"[^\"]*\"|\S+)", re.I)
_STRINGS = re.compile(r'"""(?:.|\n)*?"""|"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
# Comments of EQL and ES|QL (KQL has none: ``/tmp/*`` there is a value).
_COMMENTS = re.compile(r"/\*(?:.|\n)*?\*/|//[^\n]*")
_ACTIONS = re.compile(r"event\.action\s*(?:==|:|in|like~?|:)\s*(\([^)]*\)|\"[^\"]*\"|[\w-]+)", re.I)
# Defend's Linux file events say "unknown" (its sample documents): a test for "success" is
# met by auditd's events only.
_SUCCESS = re.compile(r"event\.outcome\s*(?:==|:)\s*\"?success", re.I)
_EQL_CAT = re.compile(r"(?<![\w.])(process|network|file|any)\s+where\b")
_CAT_FIELD = re.compile(r"event\.category\s*(?:==|:|in|like~?)\s*(\([^)]*\)|\"[^\"]*\"|[\w-]+)", re.I)
_CATS = ("process", "network", "file")


def linux_endpoint_rules(base: Path) -> list[tuple[Path, dict]]:
    out = []
    for path in sorted([*base.glob("rules/**/*.toml"), *base.glob("rules_building_block/**/*.toml")]):
        if "_deprecated" in path.parts:
            continue
        rule = tomllib.loads(path.read_text())["rule"]
        query = rule.get("query", "")
        index = rule.get("index") or []
        reads = any(i.startswith("logs-endpoint.events") for i in index) or (
            rule.get("type") == "esql" and "logs-endpoint.events" in query.split("|")[0]
        )
        if not reads:
            continue
        linux = path.relative_to(base).parts[:2] == ("rules", "linux") or (
            "OS: Linux" in rule.get("tags", []) and any("linux" in m.lower() for m in _OS_TEST.findall(query))
        )
        if linux:
            out.append((path, rule))
    return out


def categories(rule: dict) -> frozenset[str]:
    query = rule.get("query", "")
    found = set(_EQL_CAT.findall(query)) if rule.get("language") == "eql" else set()
    for values in _CAT_FIELD.findall(query):
        found |= {c for c in _CATS if c in values}
    if not found or "any" in found:
        indices = " ".join(rule.get("index") or []) + " " + query.split("|")[0]
        found |= {c for c in _CATS if f"logs-endpoint.events.{c}" in indices}
    found.discard("any")
    return frozenset(found) or frozenset(_CATS)


def _bare(rule: dict) -> str:
    """The query without its quoted strings and comments: what is left names fields."""
    query = _STRINGS.sub(" ", rule.get("query", ""))
    if rule.get("language") in ("eql", "esql"):
        query = _COMMENTS.sub(" ", query)
    return query


def gaps(rule: dict) -> list[str]:
    """What of the rule's query the sensor cannot give."""
    query = rule.get("query", "")
    fields = [rule.get("new_terms", {}).get("value", [])] if isinstance(rule.get("new_terms"), dict) else []
    bare = _bare(rule) + " " + " ".join(v for f in fields for v in f)
    out = sorted(set(MISSING_FIELDS.findall(bare)))
    # Each event.action test must allow an action the sensor gives (those of other sources,
    # auditd's or CloudTrail's, are never met by it).
    for values in _ACTIONS.findall(query):
        actions = set(re.findall(r"[\w-]+", values))
        if not actions & GIVEN_ACTIONS:
            out += sorted(f"event.action:{a}" for a in actions)
    if _SUCCESS.search(query):
        out.append("event.outcome:success")
    return sorted(set(out))


def fields_named(rule: dict) -> set[str]:
    bare = _bare(rule)
    return set(re.findall(r"(?<![\w.@])(?:[a-z_]+\.)+[A-Za-z_][\w]*", bare))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rules", type=Path, help="an elastic/detection-rules checkout")
    ap.add_argument("--list", action="store_true", help="name the rules not fed, with why")
    ap.add_argument("--events", type=Path, help="vigil watch --events-out file: fields no event carries")
    args = ap.parse_args(argv)
    rules = linux_endpoint_rules(args.rules)
    table: Counter = Counter()
    fed: Counter = Counter()
    left = []
    for path, rule in rules:
        cats = categories(rule)
        table[cats] += 1
        why = gaps(rule)
        if why:
            left.append((path.relative_to(args.rules), why))
        else:
            fed[cats] += 1
    print(
        f"{len(rules)} rules read logs-endpoint.events.* and target Linux; the sensor feeds {sum(fed.values())}"
    )
    print("| categories a rule needs | rules | fed now |\n|---|---:|---:|")
    for cats, n in sorted(table.items(), key=lambda kv: (len(kv[0]), -kv[1])):
        print(f"| {' + '.join(c for c in _CATS if c in cats)} | {n} | {fed[cats]} |")
    if args.list:
        for rel, why in left:
            print(f"{rel}: {', '.join(why)}")
    if args.events:
        from vigil.sensor.ecs import field_names

        seen: set[str] = set()
        for line in args.events.read_text().splitlines():
            if line.strip():
                seen |= field_names(json.loads(line))
        named: Counter = Counter()
        for _path, rule in rules:
            named.update(fields_named(rule))
        prefixes = {p for f in seen for p in _prefixes(f)}
        print("fields the rules name that no event carries (rules naming it):")
        for field, n in sorted(named.items(), key=lambda kv: -kv[1]):
            if field not in seen and field not in prefixes:
                print(f"  {field} {n}")
    return 0


def _prefixes(field: str) -> list[str]:
    parts = field.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


if __name__ == "__main__":
    sys.exit(main())
