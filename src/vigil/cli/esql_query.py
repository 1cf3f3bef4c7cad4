"""``vigil query --esql``: one ES|QL query over event files, its result as a table
(as Discover's ES|QL mode shows it) or as NDJSON, one object per row with the null
cells left out (as Kibana's rowToDocument reads a row)."""

from __future__ import annotations

import argparse

from vigil.cli import output
from vigil.errors import VigilError
from vigil.events.readers import ReadStats, read_inputs


def run_esql(args: argparse.Namespace) -> int:
    from vigil import esql
    from vigil.esql.evaluate import DEFAULT_LIMIT

    if args.kql or args.mapping is not None:
        raise VigilError("--esql takes neither --kql nor --mapping: field types come from ECS")
    program = esql.compile(args.query)
    fmt = output.resolve_format(args)
    stats = ReadStats()
    paths = args.files or ["-"]
    with output.progress("reading events") as bar:
        events = list(output.advancing(read_inputs(paths, source=args.source, stats=stats), bar))
    result = program.run(events, limit=args.size if args.size is not None else DEFAULT_LIMIT)
    if fmt == "ndjson":
        count = output.write_ndjson(result.records())
    else:
        count = _print_table(result)
    for message, n in result.warnings.items():
        output.error_console().print(f"warning: {message} ({n} times)", markup=False, highlight=False)
    output.report_reading(stats, f"{count} rows")
    return output.exit_status(paths, stats)


def _cell(value) -> str:
    from vigil.esql.values import to_json
    from vigil.sinks.terminal import visible

    if value is None:
        return ""
    v = to_json(value)
    if isinstance(v, list):
        return visible(", ".join("null" if x is None else str(x) for x in v))
    if isinstance(v, bool):
        return "true" if v else "false"
    return visible(v)


def _print_table(result) -> int:
    from rich.table import Table
    from rich.text import Text

    table = Table()
    for name, _typ in result.columns:
        table.add_column(Text(_cell(name)))
    for row in result.rows:
        table.add_row(*(Text(_cell(row[name])) for name, _ in result.columns))
    output.console().print(table)
    return len(result.rows)
