"""Events shaped as a rule expects, found by search and checked by the rule itself.

:func:`satisfy` turns a condition (EQL, or KQL as Vigil translates it) into branches
of atoms (each ``or`` a choice, each ``not`` flipping what is wanted), proposes values
for each field from the atoms' own literals (equalities, patterns with their wildcards
filled, prefixes, CIDR blocks...), keeps per field the first value that meets all its
atoms, and returns the first document the whole condition accepts. A rule it cannot
serve gives None, so the caller names it instead of passing it silently.

An ip field gets an IPv4 address, so that the caller can write it in the
IPv4-mapped IPv6 form.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import re._constants as sre_constants  # noqa: PLC2701 - a regex's parse tree
import re._parser as sre_parse  # noqa: PLC2701
import zlib
from collections.abc import Iterator
from functools import cache

from vigil import eql
from vigil.eql import ast
from vigil.eql import semantics as S

ABSENT = object()
PUBLIC = ("8.8.8.8", "1.1.1.1", "9.9.9.9", "2001:4860:4860::8888", "4.2.2.2", "208.67.222.222", "1.0.0.1")
FILLERS = ("vigil-other", 0, 1, 4444, True, ABSENT)
BRANCHES = 48


def public(path: tuple[str, ...]) -> list[str]:
    """Public addresses, in an order of the field's own, so two ip fields differ."""
    k = zlib.crc32(".".join(path).encode()) % len(PUBLIC)
    return list(PUBLIC[k:] + PUBLIC[:k])


def is_ip(path: tuple[str, ...]) -> bool:
    return S.field_spec(ast.Field(path), None).ftype == "ip"


def branches(expr: ast.Expr, want: bool = True) -> Iterator[list[tuple[ast.Expr, bool]]]:
    """Lists of (atom, wanted truth) of which any one makes ``expr`` what is wanted."""
    match expr:
        case ast.And(terms=ts) if want:
            yield from _product(ts, True)
        case ast.Or(terms=ts) if not want:
            yield from _product(ts, False)
        case ast.And(terms=ts) | ast.Or(terms=ts):
            for t in ts:
                yield from branches(t, want)
        case ast.Not(expr=e):
            yield from branches(e, not want)
        case ast.In(negated=True) as node:
            yield from branches(ast.In(node.value, node.items, node.insensitive, False), not want)
        case ast.Literal(value=v) if isinstance(v, bool):
            if v == want:
                yield []
        case _:
            yield [(expr, want)]


def _product(terms, want: bool) -> Iterator[list]:
    options = [list(itertools.islice(branches(t, want), 6)) for t in terms]
    for combo in itertools.islice(itertools.product(*options), BRANCHES):
        yield [a for part in combo for a in part]


def _fields(expr: ast.Node) -> list[tuple[str, ...]]:
    return [n.path for n in ast.walk(expr) if isinstance(n, ast.Field)]


@cache
def _query(expr: ast.Expr, want: bool):
    cond = expr if want else ast.Not(expr)
    return eql.compile(ast.Statement(ast.EventQuery(None, cond)))


def _lucene_fill(pattern: str, star: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
            continue
        out.append(star if ch == "*" else "x" if ch == "?" else ch)
        i += 1
    return "".join(out)


def _regex_sample(pattern: str) -> str | None:
    """A text a simple regular expression matches (the first branch, fewest repeats)."""
    try:
        tree = sre_parse.parse(pattern)
    except (re.error, sre_constants.error, RecursionError):
        return None

    def walk(items) -> str:
        out = []
        for op, av in items:
            if op is sre_constants.LITERAL:
                out.append(chr(av))
            elif op is sre_constants.ANY:
                out.append("x")
            elif op is sre_constants.IN:
                lit = [a for a in av if a[0] in (sre_constants.LITERAL, sre_constants.RANGE)]
                if not lit or av[0][0] is sre_constants.NEGATE:
                    out.append("#")
                else:
                    kind, val = lit[0]
                    out.append(chr(val if kind is sre_constants.LITERAL else val[0]))
            elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
                lo, _, sub = av
                out.append(walk(sub) * lo)
            elif op is sre_constants.SUBPATTERN:
                out.append(walk(av[-1]))
            elif op is sre_constants.BRANCH:
                out.append(walk(av[1][0]))
            elif op is sre_constants.AT:
                continue
            else:
                out.append("x")
        return "".join(out)

    return walk(tree)


def _ip_candidates(atom: ast.Expr) -> list[str]:
    out = []
    for n in ast.walk(atom):
        if isinstance(n, ast.Literal) and isinstance(n.value, str):
            bounds = S.ip_bounds(n.value)
            if bounds is None:
                continue
            low, high = bounds
            for k in (low + 1 if high > low else low, low):
                addr = ipaddress.IPv6Address(k)
                out.append(str(addr.ipv4_mapped or addr))
    return out


def _candidates(atom: ast.Expr, want: bool) -> list:
    out: list = []
    match atom:
        case (
            ast.Comparison(op=op, right=ast.Literal(value=v))
            | ast.Comparison(op=op, left=ast.Literal(value=v))
        ):
            if v is None:
                out += ["vigil-value"] if (op == "!=") == want else [ABSENT]
            elif isinstance(v, bool):
                out += [v, not v]
            elif isinstance(v, (int, float)):
                out += [v, v + 1, v - 1, str(v)]
            elif isinstance(v, str):
                out += [v, v + "x", "vigil-other"]
        case ast.In(items=items):
            out += [i.value for i in items if isinstance(i, ast.Literal)]
        case ast.Pattern(op=op, patterns=ps):
            for p in ps:
                if not isinstance(p, ast.Literal) or not isinstance(p.value, str):
                    continue
                if op.startswith("regex"):
                    sample = _regex_sample(p.value)
                    if sample is not None:
                        out.append(sample)
                else:
                    out += [
                        p.value.replace("*", "").replace("?", "x"),
                        p.value.replace("*", "x").replace("?", "x"),
                    ]
        case ast.FunctionCall(name=name, args=(ast.Field(), *rest)):
            lits = [a.value for a in rest if isinstance(a, ast.Literal) and isinstance(a.value, str)]
            kind = name.lower()
            for lit in lits:
                text = _lucene_fill(lit, "")
                if kind == "startswith":
                    out += [text + "x", text]
                elif kind == "endswith":
                    out += ["x" + text, text]
                elif kind == "stringcontains":
                    out += ["x" + text + "x", text]
                elif kind != "cidrmatch":
                    out.append(lit)
    return out


def _value_for(path, atoms, first=ABSENT) -> object:
    """The first proposed value (``first`` before the others) meeting every atom that
    reads only this field."""
    own = [(a, w) for a, w in atoms if set(_fields(a)) == {path}]
    proposals: list = [] if first is ABSENT else [first]
    if is_ip(path):
        for a, _ in atoms:
            proposals += _ip_candidates(a)
        proposals += public(path)
    else:
        for a, w in atoms:
            proposals += _candidates(a, w)
        proposals += list(FILLERS)

    def meets(value, atoms) -> bool:
        doc = {} if value is ABSENT else put({}, path, value)
        return all(_query(a, w).matches(doc) for a, w in atoms)

    for value in proposals:
        if meets(value, own):
            return value
    # Comparisons of one field are each their own query (any value of an array may
    # meet each): one value per wanted comparison, then the unwanted ones checked.
    values = []
    for a, w in own:
        if w:
            for value in proposals:
                if value is not ABSENT and meets(value, [(a, w)]):
                    if value not in values:
                        values.append(value)
                    break
    if values and meets(values, own):
        return values
    return proposals[0] if proposals else ABSENT


def put(doc: dict, path: tuple[str, ...], value) -> dict:
    node = doc
    for key in path[:-1]:
        nxt = node.get(key)
        if not isinstance(nxt, dict):
            nxt = node[key] = {}
        node = nxt
    node[path[-1]] = value
    return doc


def satisfy(condition: ast.Expr, base: dict, check, fixed=frozenset()) -> dict | None:
    """A document holding ``base`` that ``check`` accepts, built for ``condition``;
    the ``fixed`` paths keep their value from ``base``."""
    for branch in itertools.islice(branches(condition, True), BRANCHES):
        by_field: dict[tuple, list] = {}
        for atom, want in branch:
            for path in dict.fromkeys(_fields(atom)):
                by_field.setdefault(path, []).append((atom, want))
        doc = _copy(base)
        for path, atoms in by_field.items():
            if path in fixed:
                continue
            value = _value_for(path, atoms, get(base, path))
            if value is not ABSENT:
                put(doc, path, value)
        if check(doc):
            return doc
        _relate(doc, branch, fixed)
        if check(doc):
            return doc
    return None


def _relate(doc: dict, branch, fixed) -> None:
    """Meet the atoms that tie a field to another (``startsWith(a, substring(b, 0, -1))``):
    the field takes the other side's value, or a different one when unwanted."""
    from vigil.eql.interpreter import evaluate

    for atom, want in branch:
        if (
            isinstance(atom, ast.FunctionCall)
            and len(atom.args) >= 2
            and isinstance(atom.args[0], ast.FunctionCall)
            and atom.args[0].name.lower() == "concat"
            and atom.args[0].args
            and isinstance(atom.args[0].args[0], ast.Field)
        ):
            # `startsWith(concat(host, "."), ...)`: the field leads its concatenation.
            atom = ast.FunctionCall(atom.name, (atom.args[0].args[0], *atom.args[1:]), atom.insensitive)
        match atom:
            case (
                ast.FunctionCall(name=name, args=(ast.Field(path=p), other, *_))
                | ast.Comparison(op="==" as name, left=ast.Field(path=p), right=other)
            ) if _fields(other):
                # The other side reads fields: they need values for it to be other than null.
                for q in _fields(other):
                    if get(doc, q) is ABSENT:
                        put(doc, q, public(q)[0] if is_ip(q) else f"vigil-{q[-1]}$")
                if p in fixed:
                    # `startsWith(host, substring(user, 0, -1))`: the user is the host and one more.
                    if want and isinstance(other, ast.FunctionCall) and other.name.lower() == "substring":
                        inner = other.args[0]
                        if isinstance(inner, ast.Field) and inner.path not in fixed:
                            put(doc, inner.path, f"{get(doc, p)}$")
                    continue
                try:
                    v = evaluate(other, doc, None)
                except Exception:  # noqa: BLE001 - an unreadable side: leave the field
                    continue
                if not isinstance(v, str):
                    continue
                kind = name.lower()
                text = ("x" + v if kind == "endswith" else v) if want else "vigil-other"
                put(doc, p, text)


def get(doc: dict, path: tuple[str, ...]):
    """The value at ``path`` of a nested document, or ABSENT."""
    node = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return ABSENT
        node = node[key]
    return node


def _copy(doc):
    if isinstance(doc, dict):
        return {k: _copy(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_copy(v) for v in doc]
    return doc


def top_conjuncts(condition: ast.Expr) -> list[ast.Expr]:
    """The terms that must all hold for the condition to hold."""
    if isinstance(condition, ast.And):
        return [t for term in condition.terms for t in top_conjuncts(term)]
    return [condition]


def map_ips(doc, path=()):
    """The document with every IPv4 value of an ip field in IPv4-mapped IPv6 form."""
    if isinstance(doc, dict):
        return {k: map_ips(v, (*path, k)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [map_ips(v, path) for v in doc]
    if isinstance(doc, str) and is_ip(path):
        try:
            addr = ipaddress.ip_address(doc)
        except ValueError:
            return doc
        return f"::ffff:{addr}" if addr.version == 4 else doc
    return doc


def dotted(doc: dict, prefix: str = "") -> dict:
    """``doc`` with every nested object written as dotted keys (``{"a.b": 1}``)."""
    out = {}
    for k, v in doc.items():
        if isinstance(v, dict) and v:
            out.update(dotted(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
