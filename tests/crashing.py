"""Kill an ingest with SIGKILL in the middle of `Store.save`, from inside, and read what it left.

The kill comes from a profile hook (`sys.setprofile`) installed for the duration of `Store.save`:
every Python call and return and every call into C and its return (faiss.write_index, each sqlite3
statement, json, os.replace, unlink, fsync, flock...) is one event, and the hook sends SIGKILL to its
own process at event `k`. A dry run lists the events, so that trials can spread `k` over the whole
save and also land just before and just after each call that writes, renames or deletes a file.

Each trial is a fork of the caller (no interpreter start-up per trial) that copies nothing: the
caller copies the index first. SIGKILL leaves the process no chance to clean up, as a crash or an
OOM kill would; it is not a power cut (the kernel still writes what it was handed), and a kill lands
between two calls, never inside one C call (a half-written faiss file looks like the truncated files
that `test_robust_index.py` checks). Shared by `tests/test_crash_save.py` and `bench/crash_save.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index import CorruptIndexError, Store

# Calls that touch the disk: a kill just before and just after each of them is always tried.
_DISK_CALL = re.compile(r"^c_(call|return) .*\b(replace|write_index|fsync|unlink|execute|executemany|executescript|"
                        r"commit|close|write|mkdir|flock|connect)\b")


@dataclass(frozen=True)
class IndexState:
    """What an index holds, to tell "exactly the state before" from "exactly the state after"."""

    documents: tuple      # DocumentInfo, sorted by source
    passages: tuple       # (id, start, end, text), in row order
    texts: tuple          # (doc_id, full text), sorted
    vectors: str          # sha256 of the float32 vectors, in row order

    @property
    def digest(self) -> str:
        return hashlib.sha256(repr(self).encode("utf-8")).hexdigest()


def index_state(index_dir: Path, embedder) -> IndexState:
    store = Store.open(index_dir, embedder)
    n = len(store)
    vectors = store._vectors.reconstruct_n(0, n) if n else np.zeros((0, store.dim), np.float32)  # noqa: SLF001
    passages = store.passages([f"{c.doc_id}:{c.index}" for c in store._chunks])  # noqa: SLF001
    return IndexState(
        documents=tuple(store.documents()),
        passages=tuple((p.id, p.start, p.end, p.text) for p in passages),
        texts=tuple(sorted((d.doc_id, store.document(d.doc_id).text) for d in store.documents())),
        vectors=hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes()).hexdigest(),
    )


def index_files(index_dir: Path) -> list[str]:
    """The folder's files, but for the lock files, which stay there on purpose."""
    from index.disk import LOCK_FILES

    return sorted(p.name for p in index_dir.iterdir() if p.name not in LOCK_FILES)


def named_files(index_dir: Path) -> list[str]:
    """manifest.json and the data files it names."""
    manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    return sorted(["manifest.json", *manifest["files"]])


_OURS = tuple(os.path.join("index", name) for name in ("store.py", "disk.py", "files.py"))


class _Hook:
    """The profile function: counts events, writes the label of each (dry run) or kills at event `at`."""

    def __init__(self, at: int | None, log_path: Path):
        self.n = 0
        self.at = at
        self.labels: list[str] = []
        self.log_path = log_path

    def __call__(self, frame, event, arg) -> None:
        self.n += 1
        if self.at is None:
            self.labels.append(_label(frame, event, arg))
        elif self.n == self.at:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, f"{self.n} {_label(frame, event, arg)}".encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)


def _label(frame, event: str, arg) -> str:
    """E.g. "c_call posix.replace in write_atomic": the event, and the innermost function of the index's
    store or disk format (index/store.py, index/disk.py, index/files.py)."""
    if event.startswith("c_"):
        what = f"{event} {getattr(arg, '__module__', None) or ''}.{getattr(arg, '__qualname__', repr(arg))}"
    else:
        what = f"{event} {frame.f_code.co_name} ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})"
    while frame is not None and not frame.f_code.co_filename.endswith(_OURS):
        frame = frame.f_back
    return f"{what} in {frame.f_code.co_name if frame else '?'}"


def phase(label: str) -> str:
    """The function of index/store.py, index/disk.py or index/files.py a kill landed in."""
    where = label.rsplit(" in ", 1)[-1]
    return "the test's wrapper, after save returned" if where == "?" else where


@contextmanager
def _hooked_save(hook: _Hook):
    original = Store.save

    def save(self, *args, **kwargs):
        # Building the BM25 index (pure computation, thousands of calls in bm25s) writes nothing: done
        # first, so that the kill points fall among the calls that write, rename and delete.
        self._keyword_index()
        sys.setprofile(hook)
        try:
            original(self, *args, **kwargs)
        finally:
            sys.setprofile(None)

    Store.save = save
    try:
        yield
    finally:
        Store.save = original


def _in_child(work: Callable[[], None], at: int | None, log_path: Path, timeout: float) -> tuple[str, list[str]]:
    """Run `work` in a fork with the hook; (how the child ended, the dry run's labels)."""
    labels_path = log_path.with_suffix(".labels.json")
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller
        status = 1
        try:
            import faiss

            faiss.omp_set_num_threads(1)  # the parent's OpenMP threads do not exist in a fork
            hook = _Hook(at, log_path)
            with _hooked_save(hook):
                work()
            if at is None:
                labels_path.write_text(json.dumps(hook.labels), encoding="utf-8")
            status = 0
        finally:
            os._exit(status)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "hung", []
        time.sleep(0.005)
    if os.WIFSIGNALED(status):
        how = "killed" if os.WTERMSIG(status) == signal.SIGKILL else f"signal {os.WTERMSIG(status)}"
    else:
        how = "finished" if os.WEXITSTATUS(status) == 0 else f"exit {os.WEXITSTATUS(status)}"
    labels = json.loads(labels_path.read_text(encoding="utf-8")) if at is None and how == "finished" else []
    return how, labels


def kill_points(labels: list[str], trials: int) -> list[int]:
    """`trials` distinct event numbers (1-based): half spread evenly over the save, half just before and
    after the calls that write, rename or delete (`_DISK_CALL`), themselves spread evenly."""
    total = len(labels)
    calls = [label.rsplit(" in ", 1)[0] for label in labels]
    disk = [i + 1 for i, call in enumerate(calls) if _DISK_CALL.search(call)]
    # Just before and just after the switch to the new generation, always.
    chosen = {i + 1 for i, call in enumerate(calls) if re.search(r"^c_(call|return) \w+\.replace$", call)}
    if disk:
        chosen.update(disk[int(i)] for i in np.linspace(0, len(disk) - 1, min(len(disk), trials // 2)))
    rest = [k for k in range(1, total + 1) if k not in chosen]
    room = min(trials, total) - len(chosen)
    if room > 0:
        chosen.update(rest[int(round(i))] for i in np.linspace(0, len(rest) - 1, room))
    return sorted(chosen)


@dataclass
class Outcome:
    at: int
    label: str               # the event the kill landed on
    ended: str               # "killed" (expected), "finished", "hung", ...
    loads: bool = False
    equals: str = ""         # "before", "after", or what went wrong
    leftovers: list[str] = field(default_factory=list)   # files of ours not named by the manifest, after the open
    recovered: bool = False  # the next ingest completes and gives the state after


@dataclass
class CrashRun:
    events: int
    outcomes: list[Outcome]

    def count(self, test: Callable[[Outcome], bool]) -> int:
        return sum(map(test, self.outcomes))


def crash_trials(base: Path, work_dir: Path, change: Callable[[Path], None], embedder, trials: int,
                 timeout: float = 60.0) -> CrashRun:
    """Kill `change(index_dir)` (an ingest that saves) at `trials` points of its save, each on a fresh copy
    of the index in `base`; after each, open the index, compare it with the states before and after,
    list leftovers, then run `change` again to completion."""
    before = index_state(base, embedder)
    reference = work_dir / "reference"
    shutil.copytree(base, reference)
    how, labels = _in_child(lambda: change(reference), None, work_dir / "dry-run", timeout)
    if how != "finished" or not labels:
        raise RuntimeError(f"the dry run ended {how}")
    after = index_state(reference, embedder)
    if after == before:
        raise RuntimeError("the change does not change the index: nothing to tell apart")

    outcomes = []
    for at in kill_points(labels, trials):
        index_dir = work_dir / f"trial-{at}"
        shutil.copytree(base, index_dir)
        log_path = work_dir / f"trial-{at}.log"
        how, _ = _in_child(lambda: change(index_dir), at, log_path, timeout)
        outcome = Outcome(at, log_path.read_text() if log_path.exists() else labels[at - 1], how)
        try:
            state = index_state(index_dir, embedder)
            outcome.loads = True
            outcome.equals = "before" if state == before else "after" if state == after else "neither"
            outcome.leftovers = sorted(set(index_files(index_dir)) - set(named_files(index_dir)))
        except CorruptIndexError as e:
            outcome.equals = f"does not load: {e}"
        if outcome.loads:
            change(index_dir)
            outcome.recovered = (index_state(index_dir, embedder) == after
                                 and index_files(index_dir) == named_files(index_dir))
        outcomes.append(outcome)
        shutil.rmtree(index_dir)
    return CrashRun(len(labels), outcomes)
