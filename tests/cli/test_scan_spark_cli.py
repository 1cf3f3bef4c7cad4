"""``vigil scan --spark MASTER``: the command line on a real Spark in local mode."""

from __future__ import annotations

import pytest

from vigil.cli import main

pytest.importorskip("pyspark")
from test_scan_cli import SAMPLE, dracut_event, scan, write_ndjson  # noqa: E402


def test_spark_scan_gives_the_alerts_of_one_process(capsys, tmp_path):
    events = write_ndjson(
        tmp_path / "events.ndjson",
        [dracut_event("/usr/lib/dracut/modules.d/99x/a.sh", "/usr/bin/curl"), "{oops"],
    )
    _, alone, alone_err = scan(capsys, SAMPLE, events)
    code, on_spark, err = scan(capsys, "--spark", "local[2]", SAMPLE, events)
    assert code == 1  # a line was skipped: the input was not read whole
    assert [a["kibana.alert.uuid"] for a in on_spark] == [a["kibana.alert.uuid"] for a in alone]
    assert len(on_spark) == 3
    assert f"{events}:2:2" in err and "18 events read, 1 skipped" in err
    assert err.splitlines()[-1] == alone_err.splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--spark", "local[2]", "-"], "not standard input"),
        (["--spark", "local[2]", "--jobs", "2", str(SAMPLE)], "exclude each other"),
        (["--spark", "nonsense", str(SAMPLE)], "cannot start Spark on nonsense: "),
        (["--spark", "spark://127.0.0.1:1", str(SAMPLE)], "cannot reach the Spark master"),
        (["--spark", "spark://somewhere", str(SAMPLE)], "spark://HOST:PORT"),
    ],
    ids=["stdin", "jobs", "bad-master", "unreachable", "no-port"],
)
def test_spark_mistakes_are_one_line_errors(capsys, argv, message):
    code = main(["scan", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err
