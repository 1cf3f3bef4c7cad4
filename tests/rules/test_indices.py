"""Index patterns against index names, data stream backing indices included."""

from vigil.rules.indices import matches_patterns, stream_name

SEED = ["logs-endpoint.events.file*", "logs-sentinel_one_cloud_funnel.*", "endgame-*"]


def test_backing_index_is_selected_as_its_stream():
    # An Elastic Defend export names the hidden backing index, not the stream a rule searches.
    backing = ".ds-logs-endpoint.events.file-default-2024.09.16-000001"
    assert stream_name(backing) == "logs-endpoint.events.file-default"
    assert matches_patterns(SEED, backing)
    assert not matches_patterns(SEED, ".ds-logs-endpoint.events.process-default-2024.09.16-000001")
    assert stream_name(".ds-logs-x-default-000003") == "logs-x-default"  # 7.9/7.10: no date
    assert not matches_patterns("logs-*,-logs-endpoint*", backing)


def test_other_names_are_left_alone():
    assert stream_name("logs-endpoint.events.file-default") == "logs-endpoint.events.file-default"
    assert stream_name(".ds-notes") == ".ds-notes"
    assert not matches_patterns(SEED, ".ds-notes")
    # A pattern that names backing indices itself still selects them.
    assert matches_patterns(".ds-logs-*", ".ds-logs-a-default-2024.01.01-000001")
