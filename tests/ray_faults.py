"""Faults injected into real Ray worker processes (tests/test_ray_engine.py), from outside the package.

`arm` is the `worker_process_setup_hook` of the tests' Ray job: every worker process runs it at start. It wraps
the Ray engine's own functions in that worker, and each wrapper acts only while a flag file is present in the
folder named by $DATAMIX_FAULTS. A one-shot flag is claimed by deleting it, which succeeds in one process only,
so exactly one attempt fails and Ray's retry runs the real code.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

FAIL_PACK = "fail-pack-once"  # a pack task raises a transient OSError once
KILL_WRITER = "kill-writer-once"  # a shard-writing worker process SIGKILLs itself mid-shard, once
SLOW_WRITES = "slow-writes"  # shard writes take a while, the third one longest (the driver is killed meanwhile)
KILLED = "killed-writer"  # left behind by the worker that killed itself


def flags() -> Path:
    return Path(os.environ["DATAMIX_FAULTS"])


def claim(name: str) -> bool:
    try:
        (flags() / name).unlink()
        return True
    except FileNotFoundError:
        return False


def arm() -> None:
    # Patched where they are defined: Ray ships the engine's task functions by value, and their globals
    # (these two functions) are looked up by module and name when a task is unpickled in this worker.
    from datamix.builder import write
    from datamix.mixdir import shards

    real_ready, real_write = write.ready_sample, shards.write_shard

    def ready_sample(args):
        if claim(FAIL_PACK):
            raise OSError("injected transient read failure")
        return real_ready(args)

    def write_shard(out_dir, name, first, packed, attempt=""):
        if (flags() / SLOW_WRITES).exists():  # shards after the third are done before it: beyond the journal
            time.sleep(3.0 if name.endswith("-000002.tar") else 0.2)
        if claim(KILL_WRITER):
            return real_write(out_dir, name, first, _die_after(packed, 2, name), attempt)
        return real_write(out_dir, name, first, packed, attempt)

    write.ready_sample, shards.write_shard = ready_sample, write_shard


def _die_after(packed, n: int, name: str):
    """The first `n` samples of a shard go into its temporary file, then the process dies."""
    for i, data in enumerate(packed):
        if i == n:
            (flags() / KILLED).write_text(name)
            os.kill(os.getpid(), signal.SIGKILL)
        yield data
