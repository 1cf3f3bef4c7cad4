"""Values an attacker writes into events or rules are shown to people, never obeyed.

Terminal controls (OSC ``ESC]0;`` titles, ``ESC[2J``, C1 codes, bidirectional
overrides) are shown visibly, and Rich markup in a value (``[/bold]``, ``[link=...]``)
is text: no crash, no hyperlink, no style.
"""

from __future__ import annotations

import io
import re

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.cli import main
from vigil.sinks.ndjson import NdjsonSink
from vigil.sinks.table import AlertTable
from vigil.sinks.terminal import safe_console, visible

HOSTILE = "[/bold]\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e[link=http://evil.example]click[/link]\r"
# What a terminal could obey: any C0/C1 control but newline and tab, DEL, bidi controls.
OBEYED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def event(**host) -> dict:
    return {
        "@timestamp": "2024-01-01T00:00:00Z",
        "event": {"category": ["file"], "type": ["creation"]},
        "host": {"os": {"type": "linux"}, **host},
        "process": {"executable": "/bin/cp" + HOSTILE, "name": "cp"},
        "file": {"path": "/lib/dracut/modules.d/99x/a.sh" + HOSTILE},
    }


def test_visible_shows_controls_and_keeps_text():
    assert visible("a\x1b]0;t\x07b") == "a\\x1b]0;t\\x07b"
    assert visible("\x9b\u202e") == "\\x9b\\u202e"
    assert visible("line\nnext\tx", lines=True) == "line\nnext\tx"
    assert visible("line\nnext") == "line\\x0anext"
    assert visible("C:\\Windows\\x64 [b]é") == "C:\\Windows\\x64 [b]é"


@given(st.text())
def test_visible_leaves_nothing_a_terminal_obeys(text):
    assert OBEYED.search(visible(text)) is None
    assert OBEYED.search(visible(text, lines=True)) is None
    assert visible(visible(text)) == visible(text), "escaped once: a second pass changes nothing"


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60))
def test_alert_table_on_a_colour_terminal_shows_values_without_obeying_them(name, host):
    out = io.StringIO()
    con = safe_console(file=out, force_terminal=True, width=100, color_system="truecolor")
    table = AlertTable(con)
    table.write(
        {
            "kibana.alert.rule.rule_id": "r1",
            "kibana.alert.rule.name": name,
            "kibana.alert.severity": "high",
            "host.name": host,
            "file.path": HOSTILE,
        }
    )
    table.close()
    text = out.getvalue()
    # Only Rich's own styles (CSI ... m) remain; no OSC, no hyperlink, no other control.
    stripped = re.sub("\x1b\\[[0-9;]*m", "", text)
    assert OBEYED.search(stripped) is None
    assert "\x1b]8;" not in text


def test_scan_table_and_alerts_list_and_show_survive_markup_and_controls(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    events = tmp_path / "e.ndjson"
    events.write_bytes(orjson.dumps(event(name=HOSTILE)) + b"\n")
    store = tmp_path / "a.db"
    assert main(["scan", "--format", "table", "--store", str(store), str(events)]) == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\\x1b]0;pwned" in out and "[/bold]" in out
    assert main(["alerts", "list", "--store", str(store), "--format", "table"]) == 0
    out, _ = capsys.readouterr()
    assert "[/bold]\\x1b]0;pwned\\x07" in out and "\x1b" not in out and "\x9b" not in out
    assert main(["alerts", "list", "--store", str(store), "--format", "ndjson"]) == 0
    alert = orjson.loads(capsys.readouterr().out.splitlines()[0])
    assert alert["host"]["name"] == HOSTILE, "NDJSON stays exact"
    assert (
        main(["alerts", "show", alert["kibana.alert.uuid"], "--store", str(store), "--format", "table"]) == 0
    )
    out, _ = capsys.readouterr()
    assert "\\u202e" in out and OBEYED.search(out) is None


@given(st.text())
def test_ndjson_is_the_same_json_with_every_control_escaped(text):
    # orjson escapes C0 controls; C1 and bidirectional ones are escaped by the sink.
    out = io.BytesIO()
    sink = NdjsonSink(out)
    sink.write({"v": text + HOSTILE, text: 1})
    line = out.getvalue()
    assert OBEYED.search(line.decode()) is None
    assert orjson.loads(line) == {"v": text + HOSTILE, text: 1}


def test_rules_show_shows_a_hostile_rule_as_text(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    rule = tmp_path / "r.toml"
    rule.write_text(
        '[metadata]\ncreation_date = "2024/01/01"\n\n[rule]\n'
        'author = ["x"]\ndescription = "d\\u001b]0;t\\u0007"\nname = "[/bold]\\u001b[2J evil"\n'
        'rule_id = "11111111-1111-1111-1111-111111111111"\nrisk_score = 1\nseverity = "low"\n'
        'type = "eql"\nlanguage = "eql"\nindex = ["logs-*"]\n'
        'query = "process where process.name == \\"[link=http://e]x\\u009b\\""\n'
        'note = "see [link=http://evil.example]this[/link] \\u001b[31m"\n'
    )
    code = main(["rules", "show", "--rules", str(rule), "11111111", "--format", "table"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "[/bold]" in out and "\\x1b[2J" in out and "\\x9b" in out
    assert "\x1b" not in out and "\x9b" not in out


def test_errors_that_echo_input_show_controls(tmp_path, capsys):
    name = tmp_path / "a\x1b]0;t\x07.ndjson"
    name.write_text("{oops\n")
    assert main(["scan", "--format", "ndjson", str(name)]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b]0;t\\x07" in err
