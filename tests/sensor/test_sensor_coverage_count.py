"""docs/sensor.md's count of the prebuilt Linux endpoint rules the sensor feeds, recounted by
tools/sensor_coverage.py on the rules beside the repository: the table there and this test
change together."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TABLE = """| process | 250 | 246 |
| file | 66 | 66 |
| network | 11 | 10 |
| process + network | 21 | 21 |
| process + file | 8 | 6 |
| network + file | 3 | 2 |
| process + network + file | 1 | 1 |"""

NOT_FED = {
    "rules/cross-platform/credential_access_forced_authentication_pipes.toml",  # host.ip, a Windows stage
    "rules/cross-platform/credential_access_suspicious_instance_metadata_service_api_request.toml",  # code signatures
    "rules/cross-platform/execution_aws_ec2_lolbin_via_ssm.toml",  # CloudTrail's SendCommand
    "rules/linux/persistence_insmod_kernel_module_load.toml",  # load_module
    "rules/linux/persistence_tainted_kernel_module_loaded.toml",  # load_module
    "rules/linux/privilege_escalation_chroot_execution_container_context.toml",  # process.title
    "rules/linux/privilege_escalation_suspicious_chown_fowner_elevation.toml",  # auditd's action
    "rules/linux/privilege_escalation_suspicious_passwd_file_write.toml",  # event.outcome success
}


def test_the_sensor_feeds_352_of_the_360_rules(shared):
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "sensor_coverage.py"),
            str(shared / "detection-rules"),
            "--list",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = out.splitlines()
    assert lines[0] == "360 rules read logs-endpoint.events.* and target Linux; the sensor feeds 352"
    assert "\n".join(lines[3:10]) == TABLE
    assert {line.split(":")[0] for line in lines[10:]} == NOT_FED
    # The DNS rules are fed now: lookup_requested with dns.question.name.
    assert not [line for line in lines[10:] if "dns" in line]
    assert TABLE in (REPO / "docs" / "sensor.md").read_text()
