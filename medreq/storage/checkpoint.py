"""SQLite's WAL checkpoints on a thread of their own, off the event loop.

With WAL and ``synchronous=NORMAL`` a commit only appends to the WAL file; the two fsyncs
happen in *checkpoints*, which copy the WAL back into the database. SQLite runs one by itself
inside the commit that takes the WAL past 1,000 pages — on the thread that commits, which for
the server (store.py) is the event loop. Under `medreq bench cycle` that was 13 % of the
server's samples, 5.8 % of them in `fdatasync` (py-spy --native, docs/benchmarks.md): every
socket waits while one commit syncs the disk.

`Checkpointer` turns SQLite's automatic checkpoint off for the store's connections
(``wal_autocheckpoint=0``) and runs ``PRAGMA wal_checkpoint(PASSIVE)`` every `INTERVAL` on a
connection of its own, in a daemon thread. The sqlite3 module releases the GIL while SQLite
works, so the copy and the fsyncs run beside the event loop. A PASSIVE checkpoint never waits
for readers or writers, and takes nothing from durability: a committed transaction is in the
WAL, which SQLite replays after a crash, whether or not a checkpoint copied it yet.

``journal_size_limit`` truncates a WAL that grew large (a burst, a long reader) once it is reset.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("medreq.storage")
INTERVAL = 0.2  # seconds; ~100 cycles' pages at 500 cycles/s, far below SQLite's 1,000-page default
WAL_SIZE_LIMIT = 64 * 1024 * 1024


class Checkpointer:
    """Checkpoints one database file's WAL every `interval` seconds until `close()`."""

    def __init__(self, path: str, *, interval: float = INTERVAL, busy_seconds: float = 10.0) -> None:
        self.path = path
        self.interval = interval
        self.busy_seconds = busy_seconds
        #: completed checkpoints, and the last one's (busy, WAL frames, frames checkpointed)
        self.rounds = 0
        self.last: tuple[int, int, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="medreq-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop, after one last checkpoint."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.busy_seconds + 5)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=self.busy_seconds, isolation_level=None)
        try:
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            while True:
                stopping = self._stop.wait(self.interval)
                self._checkpoint(conn)
                if stopping:
                    return
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # the file went away (a test's temp dir), a full disk: try again later
            log.warning("WAL checkpoint failed: %s", exc)
            return
        self.last = (int(busy), int(frames), int(done))
        self.rounds += 1


def connection_pragmas(background: bool) -> list[str]:
    """What each of the store's own connections sets for `Checkpointer` to do the checkpoints."""
    return ["PRAGMA wal_autocheckpoint=0", f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}"] if background else []
