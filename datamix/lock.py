"""One writer per output folder: a build, subsample or export holds an exclusive lock while it writes.

Two builds into the same `--out` at once would interleave shards and journals and leave a folder whose
manifest describes neither. The lock is an advisory `flock` on `<folder>/.datamix.lock`, so the
kernel releases it when the holder dies (a file left by a killed build is no lock at all); the file
holds who took it, which the second process names in its message. The holder removes the file before
it lets go, so a finished folder holds only what it wrote (outputs stay byte-identical); a process
that locked a file just removed sees its inode is no longer the path's and tries again.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from datamix.errors import BusyError, InputError

LOCK_NAME = ".datamix.lock"


@contextmanager
def output_lock(folder: str | Path, command: str) -> Iterator[None]:
    """Hold the folder's lock for the duration of the block; BusyError names the holder if it is taken."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder; choose a folder for --out")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = _acquire(path, folder)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                                 "argv": sys.argv[1:], "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # while still holding it, so nobody can take the old file meanwhile
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(path: Path, folder: Path) -> int:
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise BusyError(f"{folder}: another datamix process is writing here ({holder}); "
                            "wait for it to finish or choose another --out") from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # we locked a file its holder had just removed: take the new one
    raise BusyError(f"{folder}: the lock file keeps changing; is another datamix process starting here?")


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"{info['command']}, pid {info['pid']} on {info['host']} since {info['since']}"
    except (ValueError, KeyError, OSError):
        return "holder unknown"
