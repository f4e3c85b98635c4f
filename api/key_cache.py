"""This process's memory of API key lookups, each answer trusted for at most ``KEY_CACHE_SECONDS``.

Without it every request reads its key's row. With it, a revocation reaches every API process within
``KEY_CACHE_SECONDS`` (the README promises "within 5 s"), and an expiry takes effect at its exact
moment, since the cached ``expires_at`` is compared with the clock at every request (api/auth.py).
Unknown keys are not remembered: a key created a moment ago must work at once, and random garbage
must not fill the memory.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy.orm import Session

from store.organizations import KeyRecord, find_key, hash_key

KEY_CACHE_SECONDS = 2.0
MAX_ENTRIES = 10_000


class KeyCache:
    """Key lookups by hash, each reused for ``ttl`` seconds.

    Example:
        ```python
        cache = KeyCache()
        record = cache.lookup(session, "mpk_...")  # reads the row; the same call within 2 s does not
        ```
    """

    def __init__(self, ttl: float = KEY_CACHE_SECONDS, max_entries: int = MAX_ENTRIES):
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[KeyRecord, float]] = {}
        self._lock = threading.Lock()

    def lookup(self, session: Session, key: str) -> KeyRecord | None:
        """The key's record (whatever its status), from memory if read less than ``ttl`` seconds ago."""
        digest = hash_key(key)
        # The age counts from before the read, so an answer is never trusted past ttl after it was true.
        now = time.monotonic()
        entry = self._entries.get(digest)
        if entry is not None and now - entry[1] < self.ttl:
            return entry[0]
        record = find_key(session, digest)
        with self._lock:
            if record is None:
                self._entries.pop(digest, None)
            else:
                if len(self._entries) >= self.max_entries:
                    self._evict(now)
                self._entries[digest] = (record, now)
        return record

    def _evict(self, now: float) -> None:
        stale = [digest for digest, (_, read_at) in self._entries.items() if now - read_at >= self.ttl]
        for digest in stale:
            del self._entries[digest]
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
