"""Events the hostile-input tests share: one the bundled Dracut rule alerts on."""

from __future__ import annotations

# A file creation under /lib/dracut/modules.d/ by cp: the seed rule alerts on it.
GOOD = {
    "@timestamp": "2024-01-01T00:00:00Z",
    "event": {"category": ["file"], "type": ["creation"]},
    "host": {"os": {"type": "linux"}},
    "process": {"executable": "/bin/cp", "name": "cp"},
    "file": {"path": "/lib/dracut/modules.d/99x/a.sh"},
}
