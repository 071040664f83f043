"""Durable files: a file's sha256, fsync of a file or a folder (so a rename that follows survives a crash),
atomic writes (whole bytes, or a stream for files too big to hold in memory), and a lock file between
processes and threads.

Every atomic write of the project goes through `replacing` (or `write_atomic`, built on it): the new
content goes to a hidden file beside the target, named by `temporary_path`, which is fsynced and renamed
over the target. A process killed half-way leaves that hidden file; whoever owns the folder may delete
it (`is_temporary` recognizes one).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # folders cannot be opened on Windows; there, rename is durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_path(path: Path) -> Path:
    """Where `replacing` writes `path` before the rename: hidden, and one per process and thread."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def is_temporary(name: str, of: str) -> bool:
    """Whether the file called `name` is a `temporary_path` of a file called `of` (left by a killed write)."""
    return re.fullmatch(rf"\.{re.escape(of)}\.\d+\.\d+\.tmp", name) is not None


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write the new content of `path` into, so that a reader or a crash sees the old
    file or the new one, never a part: written beside it, fsynced and renamed over it when the block
    ends. An exception in the block leaves the old file as it was and deletes the new one."""
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync(path.parent)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (see `replacing`)."""
    with replacing(path) as f:
        f.write(data)


@contextlib.contextmanager
def locked(path: Path, wait: float | None = None) -> Iterator[bool]:
    """Hold an exclusive lock on the lock file `path`; yields whether it was had within `wait` seconds.

    `wait` None waits as long as it takes, 0 tries once. Exclusive between processes and also between
    two holders in one process, one thread included: not re-entrant (the ingest's `writing` lock is,
    being one FileLock shared per process). The kernel releases the lock when its process dies, so a
    killed holder leaves no stale lock. Where locks cannot be had (a file system without them, a folder
    we may not write to) this locks nothing and yields True: one writer at a time is then up to the user.
    A missing folder yields False: there is nothing to lock.
    """
    from filelock import FileLock, Timeout

    if not path.parent.is_dir():  # FileLock would create it
        yield False
        return
    # No soft (marker file) fallback: a killed holder would leave its marker behind.
    lock = FileLock(path, fallback_to_soft=False)
    try:
        lock.acquire(timeout=-1 if wait is None else wait)
        held = True
    except Timeout:
        held = False
    except OSError as e:  # no locks here (ENOLCK, ENOTSUP, a read-only folder): carry on unlocked
        log.debug("cannot lock %s: %s", path, e)
        yield True
        return
    try:
        yield held
    finally:
        if held:
            lock.release()
