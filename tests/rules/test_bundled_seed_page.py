"""The bundled Dracut Module Creation rule against Elastic's documentation page of version 2.

The page (shared/seed/dracut-module-creation.md) is parsed here, and the same
parser reads ``render_markdown`` of the bundled rule: both must give the same
metadata, query and MITRE ATT&CK mapping, and the guide and setup must say the
same words.
"""

from __future__ import annotations

import re

from vigil.rules import bundled_rules
from vigil.rules.render import render_markdown

SEED_ID = "dc765fb2-0c99-4e57-8c11-dafdf1992b66"


def _sections(page: str) -> dict[str, str]:
    """Level-2 sections by title, with the docs anchors (``[_setup_1291]``) dropped."""
    parts = re.split(r"^## (.+)$", page, flags=re.MULTILINE)
    out = {"": parts[0]}
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        out[re.sub(r"\s*\[[^\]]*\]$", "", title).strip()] = body.strip("\n")
    return out


def _attack(text: str) -> list[tuple[str, str, str, str]]:
    """(kind, name, id, url) for each Tactic / Technique / Sub-technique entry."""
    out = []
    for m in re.finditer(
        r"\* (Tactic|Technique|Sub-technique):\s*\n\s*\* Name: (.+)\n\s*\* ID: (\S+)\n\s*\* Reference URL: (.+)",
        text,
    ):
        url = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", m.group(4)).strip()
        out.append((m.group(1), m.group(2).strip(), m.group(3), url))
    return out


def parse_page(page: str) -> dict:
    """The facts a rule page states: title, description, **Label**: fields, lists, query, ATT&CK."""
    page = re.sub(r"\A---\n.*?\n---\n", "", page, flags=re.DOTALL)  # front matter
    sections = _sections(page)
    head = sections[""]
    title = re.search(r"^# (.+)$", head, re.MULTILINE).group(1)
    body = head.split(title, 1)[1].strip("\n")
    description = body.split("\n\n", 1)[0]
    fields: dict[str, object] = {}
    lines = head.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\*\*(.+?)\*\*:\s*(.*)$", line)
        if not m:
            continue
        label, value = m.group(1), m.group(2).strip()
        if value:
            fields[label] = value
            continue
        items = []
        for nxt in lines[i + 1 :]:
            if nxt.startswith("* "):
                items.append(nxt[2:].strip())
            elif nxt.strip() and items:
                break
            elif nxt.startswith("**"):
                break
        fields[label] = items
    query_section = sections.get("Rule query", "")
    query = re.search(r"```\w*\n(.*?)```", query_section, re.DOTALL).group(1)
    return {
        "name": re.sub(r"\s*\[[^\]]*\]$", "", title).strip(),
        "description": " ".join(description.split()),
        "fields": fields,
        "query": query,
        "guide": sections.get("Investigation guide", ""),
        "setup": sections.get("Setup", ""),
        "attack": _attack(query_section.split("```", 2)[-1]),
    }


def words(markdown: str) -> list[str]:
    """The words a Markdown text says, without markup or link targets."""
    text = markdown.replace("[TBC: QUOTE]", "")
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"^\s*[-*]\s+", "", text, flags=re.MULTILINE)
    text = re.sub(r"[*#`]", "", text)
    return text.split()


def seed(shared) -> dict:
    return parse_page((shared / "seed" / "dracut-module-creation.md").read_text(encoding="utf-8"))


def bundled():
    (rule,) = [r for r in bundled_rules().rules if r.rule_id == SEED_ID]
    return rule


def test_seed_page_is_read(shared):
    page = seed(shared)
    assert page["name"] == "Dracut Module Creation"
    assert page["fields"]["Rule type"] == "eql" and page["fields"]["Version"] == "2"
    assert len(page["attack"]) == 8 and page["attack"][0] == (
        "Tactic",
        "Persistence",
        "TA0003",
        "https://attack.mitre.org/tactics/TA0003/",
    )


def test_bundled_rule_values_are_the_seed_pages(shared):
    page, rule = seed(shared), bundled()
    f = page["fields"]
    assert rule.name == page["name"]
    assert " ".join(rule.description.split()) == page["description"]
    assert rule.type == f["Rule type"]
    assert rule.index == f["Rule indices"]
    assert rule.severity == f["Severity"]
    assert str(rule.risk_score) == f["Risk score"]
    assert rule.interval == f["Runs every"]
    assert rule.from_ == f["Searches indices from"].split()[0]
    assert str(rule.max_signals) == f["Maximum alerts per execution"]
    assert (rule.references or "None") == f["References"]
    assert rule.tags == f["Tags"]
    assert str(rule.version) == f["Version"]
    assert rule.author == f["Rule authors"]
    assert rule.license == f["Rule license"]
    assert rule.query == page["query"]
    attack = []
    for mapping in rule.threat:
        t = mapping["tactic"]
        attack.append(("Tactic", t["name"], t["id"], t["reference"]))
        for tech in mapping.get("technique", []):
            attack.append(("Technique", tech["name"], tech["id"], tech["reference"]))
            for sub in tech.get("subtechnique", []):
                attack.append(("Sub-technique", sub["name"], sub["id"], sub["reference"]))
    assert attack == page["attack"]


def test_guide_and_setup_say_what_the_page_says(shared):
    page, rule = seed(shared), bundled()
    # The page replaces the guide's blockquote (the generative-AI disclaimer) with "[TBC: QUOTE]".
    quote = [line for line in rule.note.splitlines() if line.startswith(">")]
    assert any("generative AI" in line for line in quote) and "[TBC: QUOTE]" in page["guide"]
    note = "\n".join(line for line in rule.note.splitlines() if not line.startswith(">"))
    assert words(note) == words(page["guide"])
    assert words(rule.setup) == words(page["setup"])


def test_rendered_page_states_the_seed_pages_facts(shared):
    """``vigil rules show`` lays the rule out as Elastic's page does: same facts, same places."""
    page, mine = seed(shared), parse_page(render_markdown(bundled()))
    shown = ("name", "description", "query", "attack")
    assert {k: mine[k] for k in shown} == {k: page[k] for k in shown}
    for label, value in page["fields"].items():
        if label == "Searches indices from":  # the page adds links after the value
            assert mine["fields"][label].split()[0] == value.split()[0]
        elif label == "Framework":  # "MITRE ATT&CKTM" on the page: a trademark sign
            assert value.startswith(mine["fields"][label])
        else:
            assert mine["fields"][label] == value, label
    assert words(mine["setup"]) == words(page["setup"])


def test_fields_beyond_the_page(shared):
    """What the packaged v2 asset carries beyond the page (seed README): checked on the loaded rule."""
    table = (shared / "seed" / "README.md").read_text(encoding="utf-8")
    rule = bundled()
    assert f"`{rule.timestamp_override}`" in table.split("`timestamp_override`", 1)[1].splitlines()[0]
    assert f"`{rule.from_}`" in table.split("| `from` |", 1)[1].splitlines()[0]
    integrations = table.split("`related_integrations`", 1)[1].splitlines()[0]
    for i in rule.related_integrations:
        assert f"`{i['package']}` `{i['version']}`" in integrations
    required = table.split("`required_fields`", 1)[1].splitlines()[0].split("|")[1]
    assert sorted(f["name"] for f in rule.required_fields) == [x.strip() for x in required.split(",")]
    assert rule.kibana_parameters()["timestamp_override"] == "event.ingested"
