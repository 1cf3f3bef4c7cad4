"""Event order never fails on hostile values: timestamps past any date and tiebreakers
of mixed types sort (Elasticsearch maps a tiebreaker as one type; here an attacker's
string beside numbers must not stop a sequence query)."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.cli import main

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=8)
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(SCALARS, SCALARS | st.dictionaries(st.text(max_size=3), SCALARS, max_size=2)),
        min_size=1,
        max_size=6,
    )
)
def test_sequences_over_any_timestamps_and_tiebreakers_never_raise(tmp_path_factory, values):
    f = tmp_path_factory.mktemp("o") / "e.ndjson"
    docs = [
        {"@timestamp": ts, "event": {"category": "process", "sequence": tb}, "process": {"name": "p"}}
        for ts, tb in values
    ]
    f.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    for query in ("sequence [process where true] [process where true]", "process where true"):
        code = main(["query", "--tiebreaker", "event.sequence", "--format", "ndjson", query, str(f)])
        assert code in (0, 1)
