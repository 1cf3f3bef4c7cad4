"""Load rules from detection-rules TOML, Kibana export NDJSON and prebuilt-rule package JSON."""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from vigil.errors import VigilError
from vigil.rules.cache import RuleCache
from vigil.rules.model import Rule, rule_from_dict

RULE_SUFFIXES = (".toml", ".ndjson", ".json")
# Rules are shallow (a threat list of techniques of subtechniques is 5 levels); a rule
# nested deeper could not be written into its alerts (orjson writes 254 levels).
MAX_RULE_NESTING = 32


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)
    problems: list[VigilError] = field(default_factory=list)
    # (file name, text) of each file read, in order: load_texts rebuilds the same rules
    # elsewhere (Spark executors) without reading the files again.
    texts: list[tuple[str, str]] = field(default_factory=list)

    def extend(self, other: RuleSet) -> None:
        self.rules.extend(other.rules)
        self.problems.extend(other.problems)
        self.texts.extend(other.texts)

    def counts_by_type(self) -> Counter:
        return Counter(r.type for r in self.rules)

    def _add(self, rule: Rule) -> None:
        # Every rule is kept, runnable or not: commands count the ones they cannot run.
        self.rules.append(rule)


def _key_line(text: str, key: str) -> int | None:
    match = re.search(rf"^\s*{re.escape(key)}\s*=", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def parse_toml(text: str, name: str) -> RuleSet:
    """detection-rules TOML: one rule per file."""
    out = RuleSet()
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        col = getattr(exc, "colno", None)
        if line is None:
            m = re.search(r"line (\d+), column (\d+)", str(exc))
            if m:
                line, col = int(m.group(1)), int(m.group(2))
        msg = str(exc).split(" (at ")[0]
        out.problems.append(VigilError(f"invalid TOML: {msg}", file=name, line=line, column=col))
        return out
    rule = doc.get("rule")
    if not isinstance(rule, dict):
        out.problems.append(VigilError("no [rule] table", file=name, line=1))
        return out
    data = dict(rule)
    if _too_deep(data):
        out.problems.append(VigilError(_TOO_DEEP, file=name, line=_rule_line(text)))
        return out
    meta = doc.get("metadata") or {}
    if "version" not in data and isinstance(meta, dict) and "version" in meta:
        data["version"] = meta["version"]
    try:
        out._add(rule_from_dict(data, source=name, line=_rule_line(text)))
    except ValueError as exc:
        key = re.search(r"'(\w+)'", str(exc))
        line = _key_line(text, key.group(1)) if key else None
        out.problems.append(VigilError(str(exc), file=name, line=line or _rule_line(text)))
    return out


def _rule_line(text: str) -> int:
    idx = text.find("[rule]")
    return text.count("\n", 0, idx) + 1 if idx >= 0 else 1


def parse_ndjson(text: str, name: str) -> RuleSet:
    """Kibana's rule export: one rule per line, then an export summary line."""
    out = RuleSet()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            out.problems.append(
                VigilError(f"invalid JSON: {exc.msg}", file=name, line=number, column=exc.colno)
            )
            continue
        if not isinstance(data, dict):
            out.problems.append(VigilError("a rule line must be a JSON object", file=name, line=number))
            continue
        if "exported_count" in data or "exported_rules_count" in data:
            continue  # the export summary
        _add_dict(out, data, name, number)
    return out


def parse_json(text: str, name: str) -> RuleSet:
    """Prebuilt-rule package asset ({"attributes": {...}, "type": "security-rule"}) or a bare rule."""
    out = RuleSet()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        out.problems.append(
            VigilError(f"invalid JSON: {exc.msg}", file=name, line=exc.lineno, column=exc.colno)
        )
        return out
    items = data if isinstance(data, list) else [data]
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("attributes"), dict):
            item = item["attributes"]
        if not isinstance(item, dict):
            out.problems.append(VigilError("a rule must be a JSON object", file=name, line=1))
            continue
        _add_dict(out, item, name, 1)
    return out


def _add_dict(out: RuleSet, data: dict, name: str, line: int) -> None:
    if _too_deep(data):
        out.problems.append(VigilError(_TOO_DEEP, file=name, line=line))
        return
    try:
        out._add(rule_from_dict(data, source=name, line=line))
    except ValueError as exc:
        out.problems.append(VigilError(str(exc), file=name, line=line))


_PARSERS = {".toml": parse_toml, ".ndjson": parse_ndjson, ".json": parse_json}


_TOO_DEEP = f"rule nested deeper than {MAX_RULE_NESTING} levels"


def _too_deep(value: object) -> bool:
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_RULE_NESTING:
            return True
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _parse(text: str, name: str) -> RuleSet:
    """The rules of one file's text, which the set keeps (see :attr:`RuleSet.texts`).
    A file that breaks its parser (nesting past Python's stack) costs that file only."""
    try:
        out = _PARSERS[Path(name).suffix](text, name)
    except RecursionError:
        out = RuleSet(problems=[VigilError("rule file nested too deeply to read", file=name)])
    out.texts.append((name, text))
    return out


def _checked(text: str, name: str, cache: RuleCache) -> RuleSet:
    """:func:`_parse`, with each rule's verdict (runs, or why not) and checked query,
    from the cache when this file was read before."""
    key = cache.key(name, text)
    found = cache.get(key)
    if isinstance(found, tuple) and len(found) == 2:
        return RuleSet(rules=found[0], problems=found[1], texts=[(name, text)])
    out = _parse(text, name)
    for rule in out.rules:
        if rule.why_not_runnable is None and rule.type != "esql":
            # The engine's superset filters of a query that runs, kept in the cache with it.
            from vigil.engine.vector import query_filters

            try:
                query_filters(rule.compiled())
            except Exception:  # noqa: BLE001 - made again where the engine needs them
                pass
    cache.put(key, (out.rules, out.problems))
    return out


def load_texts(texts: Iterable[tuple[str, str]], *, cache: RuleCache | None = None) -> RuleSet:
    """The rules of files already read: ``(name, text)`` pairs, as in :attr:`RuleSet.texts`."""
    cache = RuleCache.default() if cache is None else cache
    out = RuleSet()
    for name, text in texts:
        out.extend(_checked(text, name, cache))
    cache.save()
    return out


def load_rules(paths: Iterable[str | Path], *, cache: RuleCache | None = None) -> RuleSet:
    """Load every rule file under the given files and folders; problems never stop the rest.

    Rules come checked (see :mod:`vigil.rules.cache`): each knows whether it runs."""
    cache = RuleCache.default() if cache is None else cache
    out = RuleSet()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in RULE_SUFFIXES)
        elif path.exists():
            files = [path]
        else:
            out.problems.append(VigilError("no such rule file or folder", file=str(path)))
            continue
        for file in files:
            if file.suffix not in _PARSERS:
                out.problems.append(
                    VigilError("unknown rule file type (expected .toml, .ndjson, .json)", file=str(file))
                )
                continue
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                out.problems.append(VigilError(f"cannot read rule file: {exc}", file=str(file)))
                continue
            out.extend(_checked(text, str(file), cache))
    cache.save()
    return out


def bundled_rules() -> RuleSet:
    """The rules shipped inside the package."""
    root = resources.files("vigil") / "data" / "rules"
    with resources.as_file(root) as folder:
        return load_rules([folder])
