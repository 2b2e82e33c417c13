"""One writer per output folder: a build, subsample or export holds an exclusive lock while it writes.

Two builds into the same `--out` at once would interleave shards and journals and leave a folder whose
manifest describes neither. The lock is an advisory `flock` on `<folder>/.datamix.lock`, so the
kernel releases it when the holder dies (a killed build never leaves a stale lock to clean up); the
file holds who took it, which the second process names in its message.
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
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(f"{folder}: another datamix process is writing here ({_holder(fd)}); "
                            "wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                                 "argv": sys.argv[1:], "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
        try:
            yield
        finally:  # the file stays (with its last holder): only the flock, released here, means "taken"
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"{info['command']}, pid {info['pid']} on {info['host']} since {info['since']}"
    except (ValueError, KeyError, OSError):
        return "holder unknown"
