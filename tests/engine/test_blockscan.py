"""The C block scanner and the Python one find the same lines to parse."""

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.engine.blockscan import VENDOR_MARKERS, BlockScanner

LITERALS = [b"/lib/dracut/modules.d/", b"/usr/lib/dracut/modules.d/", b"creation"]

native = pytest.mark.skipif(
    not BlockScanner(LITERALS).is_native, reason="the C block scanner was not built (no compiler)"
)


def _lines(block: bytes, scanner: BlockScanner) -> list[bytes]:
    return [block[s:].split(b"\n", 1)[0] for s in scanner.scan(block).starts]


CASES = {
    "plain match": (b'{"file":{"path":"/lib/dracut/modules.d/99x/x.sh"}}\n', True, False),
    "upper-case match": (b'{"file":{"path":"/USR/LIB/Dracut/modules.d/a"}}\n', True, False),
    "no literal": (b'{"file":{"path":"/etc/passwd"}}\n', False, False),
    "unicode escape": (b'{"file":{"path":"/lib/\\u0064racut/modules.d/a"}}\n', True, True),
    "slash escape": (b'{"file":{"path":"\\/lib\\/dracut"}}\n', True, True),
    "escaped backslash then u": (b'{"file":{"path":"c:\\\\users"}}\n', False, False),
    "three backslashes then u": (b'{"file":{"path":"c:\\\\\\u0041"}}\n', True, True),
    "non-ascii": ('{"file":{"path":"/lib/drаcut"}}\n'.encode(), True, True),
    "sentinelone": (b'{"meta.event.name":"FILECREATION","tgt.file.path":"/x"}\n', True, True),
    "endgame": (b'{"endgame":{"pid":1},"event_type":"file"}\n', True, True),
    "sentinelone target process only": (
        b'{"tgt.process.name":"bash","event.type":"Process Creation"}\n',
        True,
        True,
    ),
    "vendor key upper-case": (b'{"META.EVENT.NAME":"x"}\n', True, True),
    "truncated": (b'{"file":{"path":"/lib/drac\n', True, True),
    "two objects": (b'{"a":1} {"b":2} x\n', True, True),
    "array": (b'[{"a":1}]\n', True, True),
    "crlf": (b'{"file":{"path":"/lib/dracut/modules.d/a"}}\r\n', True, False),
    "spaces around": (b'  {"a":"creation"}  \n', True, False),
}


@native
@pytest.mark.parametrize("name", list(CASES))
def test_each_kind_of_line_is_found_by_both_scanners(name):
    line, parsed, unclean = CASES[name]
    block = b'{"a":1}\n' + line + b'{"b":2}\n'
    scanner = BlockScanner(LITERALS)
    for result in (scanner.scan(block), scanner.scan_python(block)):
        assert (8 in result.starts) == parsed
        assert (8 in result.unclean) == unclean
        assert result.newlines == 3
        assert result.blank == 0
    assert scanner.scan(block) == scanner.scan_python(block)


@native
def test_blank_lines_and_a_last_line_without_newline():
    block = b'{"a":"creation"}\n\n   \n{"b":1}\n\t\n{"c":"/lib/dracut/modules.d/x"}'
    scanner = BlockScanner(LITERALS)
    result = scanner.scan(block)
    assert result == scanner.scan_python(block)
    assert result.blank == 3
    assert result.newlines == 5
    assert _lines(block, scanner) == [b'{"a":"creation"}', b'{"c":"/lib/dracut/modules.d/x"}']


@native
def test_without_vendor_markers_a_vendor_line_is_clean():
    block = b'{"meta.event.name":"x"}\n'
    assert BlockScanner(LITERALS, vendor=False).scan(block).unclean == set()
    assert BlockScanner(LITERALS).scan(block).unclean == {0}


PIECES = [
    b'{"a":"',
    b'"}',
    b"\n",
    b"\\",
    b"u",
    b"/",
    b"U",
    b" ",
    b"\r",
    b"{",
    b"}",
    b"dracut/modules.d/",
    b"/lib/DRACUT/modules.d/",
    b"/usr/lib/dracut/modules.d/",
    b"creation",
    b"CREATION",
    b'"meta.event.name"',
    b'"src.process.',
    b'"tgt.file.',
    b'"endgame"',
    b'"event_type"',
    "é".encode(),
    b"x",
]


@native
@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.booleans())
def test_c_and_python_agree_on_any_block(pieces, vendor):
    block = b"".join(pieces)
    scanner = BlockScanner(LITERALS, vendor=vendor)
    assert scanner.scan(block) == scanner.scan_python(block)


@native
def test_the_prebuilt_literal_sets_agree_on_generated_events(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import gen_events

    path = tmp_path / "events.ndjson"
    gen_events.write(path, 5000, seed=7)
    block = path.read_bytes()
    many = [b"cmd.exe", b"powershell", b"/etc/cron", b"rundll32", b"/tmp/", b"curl", b"wget", b"base64"]
    many += [b"sudo", b"chmod", b"/dev/shm", b"certutil", b"mshta", b"regsvr32", b".ps1", b"bitsadmin"]
    # Few needles are compared 16 positions at a time, many through the pair table.
    for literals in (LITERALS, many[:3], many, []):
        scanner = BlockScanner(literals)
        assert scanner.scan(block) == scanner.scan_python(block)


@pytest.mark.parametrize(
    "doc",
    [
        {"meta.event.name": "FILECREATION"},
        {"src.process.name": "bash"},
        {"tgt.file.path": "/x"},
        {"tgt.process.name": "bash"},
        {"endgame": {"pid": 1}},
        {"event_type": "file", "serial_event_id": 3},
        {"event_type": "file", "timestamp": 132000000000000000},
    ],
)
def test_every_document_a_vendor_normalizer_takes_is_unclean(doc):
    import orjson

    from vigil.events.vendors import detect

    line = orjson.dumps(doc) + b"\n"
    assert detect(doc) != "ecs"
    scanner = BlockScanner(LITERALS)
    assert scanner.scan(line).unclean == {0}
    assert scanner.scan_python(line).unclean == {0}


def test_a_literal_holding_another_is_not_looked_for():
    scanner = BlockScanner([b"/usr/lib/dracut/modules.d/", b"/lib/dracut/modules.d/", b"creation"])
    assert scanner.literals == (b"creation", b"/lib/dracut/modules.d/")
    block = b'{"a":"/USR/lib/dracut/modules.d/x"}\n{"b":1}\n'
    assert scanner.scan(block).starts == scanner.scan_python(block).starts == [0]


def test_vendor_markers_are_lower_case():
    # The scanners look markers up case-insensitively through their lower-case form.
    assert all(m == m.lower() for m in VENDOR_MARKERS)


@native
def test_the_sse2_path_agrees_too(tmp_path):
    # The 32-byte path is taken where the processor has AVX2; VIGIL_NO_AVX2 forces the 16-byte one.
    import os
    import subprocess

    code = (
        "import sys; sys.path.insert(0, 'bench'); import gen_events\n"
        "from vigil.engine.blockscan import BlockScanner\n"
        f"gen_events.write({str(tmp_path / 'e.ndjson')!r}, 3000, seed=3)\n"
        f"block = open({str(tmp_path / 'e.ndjson')!r}, 'rb').read() + {CASES['unicode escape'][0]!r}\n"
        f"s = BlockScanner({LITERALS!r})\n"
        "assert s.scan(block) == s.scan_python(block)\n"
        "assert s.scan(block).starts\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, VIGIL_NO_AVX2="1")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
