"""Checked rules kept on disk, so that a run with thousands of rules starts at once.

Reading and checking Elastic's 2,192 prebuilt rules (TOML, then each query parsed,
checked and compiled to learn whether it runs) takes seconds on every run. The cache
keeps, per rule file, what that work produced: the rules, whether each runs (or why
not), and each runnable rule's checked statement. Matchers are not kept (they are
Python closures): :class:`vigil.eql.query.Query` compiles them when an event first
reaches the rule, so a Windows rule costs nothing on Linux data.

An entry is keyed by the file's name and text; the whole cache by Vigil's code (its
version and the size and time of each of its files, so any change to Vigil, even
unreleased, starts afresh) and the Python version. A cache that cannot be read is a
miss, never an error.

The cache is a pickle, which runs code when read: it is read only from a folder and a
file owned by the user running Vigil that nobody else may write, as ``ssh`` does with
its keys. Its place: ``$VIGIL_CACHE_DIR``, else ``$XDG_CACHE_HOME/vigil``, else
``~/.cache/vigil``; ``VIGIL_CACHE_DIR=off`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import vigil

# Entries kept beyond those of the last load (other rule folders used on this machine).
MAX_ENTRIES = 20_000
_PREFIX = "rules-"


def cache_dir() -> Path | None:
    """Where the cache lives (None: turned off)."""
    place = os.environ.get("VIGIL_CACHE_DIR")
    if place is not None:
        return None if place.strip().lower() in ("", "off", "0", "no") else Path(place)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vigil"


def code_fingerprint() -> str:
    """Vigil's version, the Python version, and the size and time of every file of
    the package: what a cached entry was made by."""
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{vigil.__version__}|{sys.version}".encode())
    root = Path(vigil.__file__).parent
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            h.update(f"{os.path.relpath(path, root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


class RuleCache:
    """One load's view of the cache: :meth:`get` entries, :meth:`put` new ones, :meth:`save`."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._entries: dict[str, bytes] = {}
        self._used: set[str] = set()
        self._new = False
        self.hits = self.misses = 0
        self._file = None
        if folder is None:
            return
        self._file = folder / f"{_PREFIX}{code_fingerprint()}.pickle"
        self._entries = self._read(self._file)

    @classmethod
    def default(cls) -> RuleCache:
        return cls(cache_dir())

    @staticmethod
    def key(name: str, text: str) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(name.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
        h.update(text.encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def get(self, key: str) -> Any | None:
        blob = self._entries.get(key)
        if blob is None:
            self.misses += 1
            return None
        try:
            value = pickle.loads(blob)
        except Exception:  # noqa: BLE001 - a bad entry is a miss
            self.misses += 1
            return None
        self._used.add(key)
        self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        if self.folder is None:
            return
        try:
            blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - what cannot be kept is checked again next time
            return
        self._entries[key] = blob
        self._used.add(key)
        self._new = True

    def save(self) -> None:
        """Write the cache if this load added to it; never fails the load."""
        if self._file is None or not self._new:
            return
        entries = self._entries
        if len(entries) > MAX_ENTRIES:
            entries = {k: v for k, v in entries.items() if k in self._used}
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _private(os.stat(self.folder)):
                return
            for old in self.folder.glob(f"{_PREFIX}*.pickle"):
                if old != self._file:
                    old.unlink(missing_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".rules-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    pickle.dump(entries, out, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, self._file)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            return
        self._new = False

    @staticmethod
    def _read(file: Path) -> dict[str, bytes]:
        try:
            with open(file, "rb") as f:
                st = os.fstat(f.fileno())
                if not (_private(st) and _private(os.stat(file.parent))):
                    return {}
                entries = pickle.load(f)
        except Exception:  # noqa: BLE001 - a missing, foreign or broken cache is empty
            return {}
        return entries if isinstance(entries, dict) else {}
