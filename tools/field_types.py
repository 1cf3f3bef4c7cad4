"""Generate Vigil's table of field types (src/vigil/data/field_types.txt).

Reads the ECS definition (``generated/ecs/ecs_flat.yml`` of an elastic/ecs
checkout) and, optionally, Elastic packages (``<package>/data_stream/*/fields/
*.yml`` under folders such as an elastic/integrations checkout's ``packages``),
and writes every field's mapping type and ``ignore_above`` in a compact tree:

    process:                      an object: only its children are fields
     command_line wildcard        a field of type wildcard (no ignore_above)
      text match_only_text        its multi-field process.command_line.text
     name                         keyword with ignore_above 1024 (the default)
     pid long
    event:
     original keyword             keyword without ignore_above
     url keyword 2083             keyword with another ignore_above

One space of indent per level of the dotted name. Package fields that name
``external: ecs`` come from ECS; a package keyword without ``ignore_above`` gets
1024, as Fleet installs it (Kibana fleet ``template.ts``: DEFAULT_IGNORE_ABOVE).
With ``--rules``, only the package fields those rules' queries name are kept.

    python tools/field_types.py ECS_CHECKOUT [--packages DIR ...] [--rules DIR ...] [-o FILE]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import yaml

DEFAULT_IGNORE_ABOVE = 1024
OUT = Path(__file__).resolve().parents[1] / "src" / "vigil" / "data" / "field_types.txt"


def ecs_fields(checkout: Path) -> dict[str, tuple[str, int | None]]:
    """name -> (type, ignore_above) for every ECS field and multi-field."""
    flat = yaml.safe_load((checkout / "generated" / "ecs" / "ecs_flat.yml").read_text(encoding="utf-8"))
    out: dict[str, tuple[str, int | None]] = {}
    for name, spec in flat.items():
        typ = spec["type"]
        if typ in ("object", "nested") and "ignore_above" not in spec:
            continue
        out[name] = (typ, spec.get("ignore_above"))
        for multi in spec.get("multi_fields") or []:
            out[f"{name}.{multi['name']}"] = (multi["type"], multi.get("ignore_above"))
    return out


def _package_entries(entries, prefix: str, out: list) -> None:
    for e in entries or []:
        if not isinstance(e, dict) or "name" not in e:
            continue
        name = prefix + str(e["name"])
        typ = e.get("type")
        if typ == "group" or (typ is None and "fields" in e):
            _package_entries(e.get("fields"), name + ".", out)
            continue
        if e.get("external") == "ecs" or typ in ("object", "nested", "alias", None):
            continue
        if "*" in name:  # a dynamic template's pattern (Fleet path_match), not a field
            continue
        limit = e.get("ignore_above")
        if typ == "keyword" and limit is None:
            limit = DEFAULT_IGNORE_ABOVE
        out.append((name, typ, limit))
        for multi in e.get("multi_fields") or []:
            mtyp = multi.get("type", "keyword")
            mlimit = multi.get("ignore_above")
            if mtyp == "keyword" and mlimit is None:
                mlimit = DEFAULT_IGNORE_ABOVE
            out.append((f"{name}.{multi['name']}", mtyp, mlimit))


def package_fields(roots: list[Path]) -> dict[str, tuple[str, int | None]]:
    """name -> (type, ignore_above) over every package; where packages disagree,
    the mapping most of them give (ties: the first in name order)."""
    votes: dict[str, Counter] = {}
    for root in roots:
        files = [
            path
            for pattern in (
                "*/data_stream/*/fields/*.yml",
                "*/fields/*.yml",
                "*/elasticsearch/transform/*/fields/*.yml",
            )
            for path in sorted(root.glob(pattern))
        ]
        for path in files:
            try:
                entries = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                print(f"skipped {path}: {exc}", file=sys.stderr)
                continue
            found: list = []
            _package_entries(entries if isinstance(entries, list) else [], "", found)
            for name, typ, limit in found:
                votes.setdefault(name, Counter())[(typ, limit)] += 1
    return {name: max(sorted(c.items(), key=str), key=lambda kv: kv[1])[0] for name, c in votes.items()}


def rule_field_names(roots: list[Path]) -> set[str]:
    """Every field name the EQL and KQL queries of these rules name."""
    import dataclasses

    from vigil import eql, kql
    from vigil.eql import ast
    from vigil.kql import tree as T
    from vigil.rules.loaders import load_rules

    names: set[str] = set()

    def kql_walk(node) -> None:
        fld = getattr(node, "field", None)
        if isinstance(fld, T.Value):
            names.add(fld.text)
        if dataclasses.is_dataclass(node):
            for f in dataclasses.fields(node):
                value = getattr(node, f.name)
                for x in value if isinstance(value, (list, tuple)) else [value]:
                    if isinstance(x, T.Node):
                        kql_walk(x)

    for rule in load_rules(roots).rules:
        try:
            if rule.query_language == "eql":
                names.update(n.name for n in ast.walk(eql.parse(rule.query)) if isinstance(n, ast.Field))
            elif rule.query_language == "kuery":
                kql_walk(kql.parse(rule.query))
        except Exception as exc:  # noqa: BLE001 - a rule that does not parse names no field
            print(f"skipped {rule.name}: {exc}", file=sys.stderr)
    return names


def render(fields: dict[str, tuple[str, int | None]], header: list[str]) -> str:
    """The indented tree described in the module docstring."""
    tree: dict = {}
    for name, spec in fields.items():
        node = tree
        for part in name.split("."):
            node = node.setdefault(part, {})
        node[None] = spec
    lines = [f"# {h}" for h in header]

    def emit(node: dict, depth: int) -> None:
        for key in sorted(k for k in node if k is not None):
            child = node[key]
            spec = child.get(None)
            if spec is None:
                text = f"{key}:"
            else:
                typ, limit = spec
                if typ == "keyword" and limit == DEFAULT_IGNORE_ABOVE:
                    text = key
                else:
                    text = f"{key} {typ}" + (f" {limit}" if limit is not None else "")
            lines.append(" " * depth + text)
            emit(child, depth + 1)

    emit(tree, 0)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ecs", type=Path, help="an elastic/ecs checkout")
    ap.add_argument("--packages", type=Path, action="append", default=[], help="a folder of Elastic packages")
    ap.add_argument(
        "--rules", type=Path, action="append", default=[], help="keep package fields these rules name"
    )
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    args = ap.parse_args(argv)

    fields = ecs_fields(args.ecs)
    version = (
        (args.ecs / "version").read_text(encoding="utf-8").strip() if (args.ecs / "version").exists() else "?"
    )
    header = [
        f"Field types and ignore_above: ECS {version} and the Elastic packages' mappings.",
        "Generated by tools/field_types.py; do not edit. Format: see that script.",
    ]
    if args.packages:
        extra = package_fields(args.packages)
        if args.rules:
            wanted = rule_field_names(args.rules)
            # A rule naming a multi-field (x.text) needs its parent, a key of a
            # flattened field that field; a named field needs its multi-fields.
            above = {".".join(n.split(".")[:i]) for n in wanted for i in range(1, n.count(".") + 1)}
            extra = {
                n: s for n, s in extra.items() if n in wanted or n in above or n.rsplit(".", 1)[0] in wanted
            }
        for name, spec in extra.items():
            fields.setdefault(name, spec)  # ECS decides the fields it defines
    args.output.write_text(render(fields, header), encoding="utf-8")
    print(f"{len(fields)} fields written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
