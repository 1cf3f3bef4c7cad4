"""Generate the character table of Vigil's standard tokenizer (src/vigil/lucene/wordbreak_data.py).

Lucene's StandardTokenizer (``StandardTokenizerImpl.jflex``) is written against the
Unicode 9.0 character database (``%unicode 9``: word-break, script and line-break
properties) and the Unicode 11.0 emoji data (``UnicodeEmojiProperties.jflex``). This
script reads a newer Unicode Character Database and keeps each property for the code
points assigned by those versions (``DerivedAge.txt``), so characters added later are
unknown to the tokenizer, as they are to Lucene. ``Extended_Pictographic`` is taken
whole: it covers reserved ranges on purpose and is stable.

    python tools/wordbreak_tables.py UCD_DIR [-o src/vigil/lucene/wordbreak_data.py]

UCD_DIR holds ``auxiliary/WordBreakProperty.txt``, ``Scripts.txt``, ``LineBreak.txt``,
``DerivedAge.txt``, ``Blocks.txt``, ``UnicodeData.txt`` and ``emoji/emoji-data.txt``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

# One bit per class the tokenizer's rules test (see vigil.lucene.analysis).
FLAGS = {
    "ALetter": 1 << 0,  # ALetter or Hebrew_Letter (AHLetter)
    "Hebrew_Letter": 1 << 1,
    "Hangul": 1 << 2,  # Script=Hangul and AHLetter
    "Numeric": 1 << 3,  # WB=Numeric, or a decimal digit of the Halfwidth and Fullwidth Forms block
    "Katakana": 1 << 4,
    "MidLetterEx": 1 << 5,  # MidLetter, MidNumLet, Single_Quote
    "MidNumericEx": 1 << 6,  # MidNum, MidNumLet, Single_Quote
    "Single_Quote": 1 << 7,
    "Double_Quote": 1 << 8,
    "ExtendNumLet": 1 << 9,
    "ExtFmtZwj": 1 << 10,  # Extend, Format, ZWJ
    "ZWJ": 1 << 11,
    "Regional_Indicator": 1 << 12,
    "Han": 1 << 13,
    "Hiragana": 1 << 14,
    "Complex_Context": 1 << 15,
    "Emoji": 1 << 16,
    "Extended_Pictographic": 1 << 17,
    "Emoji_Modifier_Base": 1 << 18,
    "Emoji_Modifier": 1 << 19,
}
# Code points whose Word_Break value UAX#29 changed after Unicode 9.0, where they were
# Other (or, below, another value): modifier letters and Armenian marks later made
# ALetter or MidLetter, the Sharada sandhi mark made Extend, and the skin-tone
# modifiers, which were E_Modifier (a value the grammar does not use) before becoming
# Extend. Checked code point by code point against Lucene's tokenizer.
WB_OTHER_IN_9 = [
    (0x02C2, 0x02C5), (0x02D2, 0x02D7), (0x02DE, 0x02DF), (0x02E5, 0x02EB), (0x02ED, 0x02ED),
    (0x02EF, 0x02FF), (0x055A, 0x055C), (0x055E, 0x055F), (0x058A, 0x058A), (0x1CF2, 0x1CF3),
    (0xA708, 0xA716), (0xA720, 0xA721), (0xA789, 0xA78A), (0xAB5B, 0xAB5B), (0x111C9, 0x111C9),
    (0x1F3FB, 0x1F3FF),
]  # fmt: skip
WB_IN_9 = [(0x02D7, 0x02D7, "MidLetter"), (0x1CF2, 0x1CF3, "Extend")]
# Emoji 11.0 reserved the block Symbols for Legacy Computing as Extended_Pictographic;
# Unicode 13 filled it with characters that are not.
PICTOGRAPHIC_IN_11 = [(0x1FB00, 0x1FBFF)]
_WB_BITS = [
    "ALetter", "Hebrew_Letter", "Hangul", "Numeric", "Katakana", "MidLetterEx", "MidNumericEx",
    "Single_Quote", "Double_Quote", "ExtendNumLet", "ExtFmtZwj", "ZWJ", "Regional_Indicator",
]  # fmt: skip
_LINE = re.compile(r"^([0-9A-F]+)(?:\.\.([0-9A-F]+))?\s*;\s*([\w.]+)")


def _entries(path: Path):
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _LINE.match(line)
        if m:
            lo = int(m.group(1), 16)
            hi = int(m.group(2), 16) if m.group(2) else lo
            yield lo, hi, m.group(3)


def _ages(ucd: Path) -> list[float]:
    age = [99.0] * 0x110000
    for lo, hi, v in _entries(ucd / "DerivedAge.txt"):
        for cp in range(lo, hi + 1):
            age[cp] = float(v)
    return age


def build(ucd: Path) -> list[tuple[int, int, int]]:
    age = _ages(ucd)
    flags = [0] * 0x110000

    def add(lo: int, hi: int, bit: int, max_age: float | None) -> None:
        for cp in range(lo, hi + 1):
            if max_age is None or age[cp] <= max_age:
                flags[cp] |= bit

    wb = {
        "ALetter": ["ALetter"],
        "Hebrew_Letter": ["ALetter", "Hebrew_Letter"],
        "Numeric": ["Numeric"],
        "Katakana": ["Katakana"],
        "MidLetter": ["MidLetterEx"],
        "MidNumLet": ["MidLetterEx", "MidNumericEx"],
        "Single_Quote": ["MidLetterEx", "MidNumericEx", "Single_Quote"],
        "MidNum": ["MidNumericEx"],
        "Double_Quote": ["Double_Quote"],
        "ExtendNumLet": ["ExtendNumLet"],
        "Extend": ["ExtFmtZwj"],
        "Format": ["ExtFmtZwj"],
        "ZWJ": ["ExtFmtZwj", "ZWJ"],
        "Regional_Indicator": ["Regional_Indicator"],
    }
    for lo, hi, v in _entries(ucd / "auxiliary" / "WordBreakProperty.txt"):
        for name in wb.get(v, ()):
            add(lo, hi, FLAGS[name], 9.0)
    for lo, hi, v in _entries(ucd / "Scripts.txt"):
        if v in ("Han", "Hiragana"):
            add(lo, hi, FLAGS[v], 9.0)
        elif v == "Hangul":
            for cp in range(lo, hi + 1):
                if age[cp] <= 9.0 and flags[cp] & FLAGS["ALetter"]:
                    flags[cp] |= FLAGS["Hangul"]
    for lo, hi, v in _entries(ucd / "LineBreak.txt"):
        if v == "SA":
            add(lo, hi, FLAGS["Complex_Context"], 9.0)
    # [\p{WB:Numeric}[\p{Blk:HalfAndFullForms}&&\p{Nd}]]: the fullwidth digits.
    blocks = [(lo, hi) for lo, hi, v in _entries(ucd / "Blocks.txt") if v == "Halfwidth"]
    for line in (ucd / "UnicodeData.txt").read_text(encoding="utf-8").splitlines():
        cp_hex, _, cat = line.split(";")[:3]
        cp = int(cp_hex, 16)
        if cat == "Nd" and any(lo <= cp <= hi for lo, hi in blocks) and age[cp] <= 9.0:
            flags[cp] |= FLAGS["Numeric"]
    for lo, hi, v in _entries(ucd / "emoji" / "emoji-data.txt"):
        if v in ("Emoji", "Emoji_Modifier_Base", "Emoji_Modifier"):
            add(lo, hi, FLAGS[v], 11.0)
        elif v == "Extended_Pictographic":
            add(lo, hi, FLAGS[v], None)
    wb_mask = sum(FLAGS[n] for n in _WB_BITS)
    for lo, hi in WB_OTHER_IN_9:
        for cp in range(lo, hi + 1):
            flags[cp] &= ~wb_mask
    for lo, hi, v in WB_IN_9:
        for name in wb[v]:
            add(lo, hi, FLAGS[name], None)
    for lo, hi in PICTOGRAPHIC_IN_11:
        add(lo, hi, FLAGS["Extended_Pictographic"], None)
    rows: list[tuple[int, int, int]] = []
    for cp, f in enumerate(flags):
        if not f:
            continue
        if rows and rows[-1][1] == cp - 1 and rows[-1][2] == f:
            rows[-1] = (rows[-1][0], cp, f)
        else:
            rows.append((cp, cp, f))
    return rows


def render(rows: list[tuple[int, int, int]]) -> str:
    out = [
        '"""Word-break classes of Lucene\'s StandardTokenizer, generated by tools/wordbreak_tables.py',
        "from the Unicode Character Database (word-break, script and line-break properties as of",
        'Unicode 9.0, emoji properties as of Unicode 11.0). Do not edit."""',
        "",
        "FLAGS = {",
    ]
    out += [f'    "{k}": {v},' for k, v in FLAGS.items()]
    out += ["}", "", "# start end flags (hexadecimal), one range a line.", 'RANGES = """']
    out += [f"{lo:x} {hi:x} {f:x}" for lo, hi, f in rows]
    out += ['"""', ""]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ucd", type=Path)
    ap.add_argument("-o", "--output", type=Path, default=Path("src/vigil/lucene/wordbreak_data.py"))
    args = ap.parse_args()
    rows = build(args.ucd)
    args.output.write_text(render(rows), encoding="utf-8")
    print(f"{len(rows)} ranges written to {args.output}")


if __name__ == "__main__":
    main()
