"""Approximate nearest neighbours: when the store's vector index stops being exact, and how it is tuned.

Below `threshold` vectors the index is a FAISS `IndexFlatIP`: exact, nothing to train or tune, and
a query scans every vector. From `threshold` on it is an IVF-Flat index: k-means splits the vectors
into `nlist` cells (about 2·√n, so cells hold about √n/2 vectors), and a query scans only the
`nprobe` cells nearest to it. `nprobe` is tuned on the store's own vectors: a sample of them is
searched leave-one-out, and the smallest `nprobe` whose recall@10 against exact search reaches the
target wins. More cells (4·√n) would need a smaller share of them probed, but k-means time grows
with the square of the cells: 2·√n keeps a million-vector build to minutes on two cores.

Why IVF-Flat and not the alternatives: it keeps the full vectors, so the scores it returns are
exact and a removed article's rows can be dropped (`remove_ids`), which HNSW cannot do; product or
scalar quantization would save memory (1.5 GB of vectors per million passages here) at some recall.
Row numbers stay the FAISS ids, as in the flat index: after a removal the ids above the removed rows
are shifted down in every cell, so row i is still the store's i-th passage.

The index is refitted when the store saves (`fit`): it switches to IVF past the threshold, back to
flat below it, and is retrained when it has doubled since it was trained (new vectors are added to
the existing cells in between, which keeps recall but slowly makes cells larger).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_ANN_THRESHOLD = 50_000   # vectors; below this search is exact
RECALL_TARGET = 0.95             # recall@10 against exact search that `nprobe` is tuned to reach
TUNING_QUERIES = 500
_MARGIN = 0.01                   # tuned a little above the target: the estimate comes from a sample
_MIN_CELL = 39                   # training points per cell below which FAISS's k-means warns


@dataclass(frozen=True)
class VectorIndexInfo:
    """What kind of index the store holds, and how an approximate one was built (kept in the manifest)."""

    kind: str = "flat"                    # "flat" (exact) or "ivf"
    nlist: int = 0                        # IVF cells
    nprobe: int = 0                       # cells scanned per query
    trained_on: int = 0                   # vectors in the index when it was trained
    recall_at_10: float | None = None     # measured with `tuned_with` held-out queries at `nprobe`
    tuned_with: int = 0
    build_seconds: float = 0.0            # train + add + tune

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (0, None, 0.0) or k == "kind"}

    @classmethod
    def from_dict(cls, data: dict | None) -> VectorIndexInfo:
        """The info from a manifest; an index saved before approximate search existed is flat."""
        if not data:
            return cls()
        info = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        if info.kind not in ("flat", "ivf"):
            raise ValueError(f"unknown vector index kind {info.kind!r}")
        return info


def ann_threshold(value: int | None = None) -> int:
    """`value`, else QA_ANN_THRESHOLD, else the default: the size from which search is approximate."""
    if value is None:
        raw = os.environ.get("QA_ANN_THRESHOLD", "").strip()
        try:
            value = int(raw) if raw else DEFAULT_ANN_THRESHOLD
        except ValueError:
            raise ValueError(f"QA_ANN_THRESHOLD must be a whole number of vectors, not {raw!r}") from None
    if value < 1:
        raise ValueError(f"the approximate-search threshold must be at least 1 vector, not {value}")
    return value


def flat_index(dim: int):
    import faiss

    return faiss.IndexFlatIP(dim)


def kind_of(index) -> str:
    import faiss

    if isinstance(index, faiss.IndexFlat):
        return "flat"
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf"
    return type(index).__name__


def all_vectors(index) -> np.ndarray:
    """Every vector, in row order: a view of a flat index's memory, a copy gathered from IVF cells."""
    import faiss

    n, d = index.ntotal, index.d
    if isinstance(index, faiss.IndexFlat):
        return faiss.rev_swig_ptr(index.get_xb(), n * d).reshape(n, d) if n else np.zeros((0, d), np.float32)
    out = np.empty((n, d), dtype=np.float32)
    lists = index.invlists
    for cell in range(index.nlist):
        size = lists.list_size(cell)
        if size:
            ids = faiss.rev_swig_ptr(lists.get_ids(cell), size)
            codes = faiss.rev_swig_ptr(lists.get_codes(cell), size * lists.code_size)
            out[ids] = codes.view(np.float32).reshape(size, d)  # IVF-Flat codes are the raw vectors
    return out


def search_rows(index, query: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The best `k` of `rows` (sorted row numbers) for one query, as FAISS's (scores, rows) arrays.

    Flat: the allowed vectors are scored directly (exact, and cheaper than a selector for few rows).
    IVF: a FAISS ID selector, with more cells probed the fewer rows are allowed, so that a narrow
    filter still finds `k` of them.
    """
    import faiss

    if k <= 0 or not len(rows):
        return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
    if isinstance(index, faiss.IndexFlat):
        scores = all_vectors(index)[rows] @ query[0]
        top = np.argsort(-scores, kind="stable")[:k]
        return scores[top][None, :], rows[top][None, :]
    share = len(rows) / max(index.ntotal, 1)
    params = faiss.SearchParametersIVF(sel=faiss.IDSelectorBatch(rows.astype(np.int64)),
                                       nprobe=min(index.nlist, int(np.ceil(index.nprobe / max(share, 1e-9)))))
    return index.search(query, k, params=params)


def remove_rows(index, rows: np.ndarray) -> None:
    """Drop `rows` and renumber the rest so that ids stay 0..n-1 in the same order."""
    import faiss

    rows = np.unique(np.asarray(rows, dtype=np.int64))
    removed = index.remove_ids(rows)
    assert removed == len(rows), f"removed {removed} of {len(rows)} rows"
    if isinstance(index, faiss.IndexFlat):
        return  # a flat index has no ids: its rows close up by themselves
    lists = index.invlists
    for cell in range(index.nlist):
        size = lists.list_size(cell)
        if size:
            ids = faiss.rev_swig_ptr(lists.get_ids(cell), size)  # a writable view of the cell's ids
            ids -= np.searchsorted(rows, ids)


def fit(index, info: VectorIndexInfo, threshold: int, *, target: float = RECALL_TARGET):
    """The (index, info) to keep for the vectors `index` holds now; `index` itself if nothing changes."""
    n = index.ntotal
    if n < threshold:
        if info.kind == "flat":
            return index, info
        flat = flat_index(index.d)
        flat.add(all_vectors(index))
        log.info("the index has %d vectors, under the threshold of %d: search is exact again", n, threshold)
        return flat, VectorIndexInfo()
    if info.kind == "ivf" and n < 2 * info.trained_on:
        return index, info
    return build_ivf(all_vectors(index), target=target)


def nlist_for(n: int) -> int:
    """About 2·√n cells, and never fewer than `_MIN_CELL` training vectors per cell."""
    return max(1, min(round(2 * math.sqrt(n)), n // _MIN_CELL))


def build_ivf(vectors: np.ndarray, *, target: float = RECALL_TARGET, queries: int = TUNING_QUERIES, seed: int = 0):
    """Train an IVF-Flat index on `vectors` (rows become ids 0..n-1), add them and tune `nprobe`."""
    import faiss

    started = time.perf_counter()
    n, d = vectors.shape
    nlist = nlist_for(n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    # k-means on a sample of 64 points per cell: nearly the recall of FAISS's default 256, in a quarter of the time.
    index.cp.max_points_per_centroid = 64
    index.cp.seed = seed
    log.info("training an approximate index: %d vectors in %d cells", n, nlist)
    index.train(vectors)
    index.add(vectors)
    nprobe, recall, used = tune_nprobe(index, vectors, target=target, queries=queries, seed=seed)
    index.nprobe = nprobe
    info = VectorIndexInfo(kind="ivf", nlist=nlist, nprobe=nprobe, trained_on=n, recall_at_10=round(recall, 4),
                           tuned_with=used, build_seconds=round(time.perf_counter() - started, 2))
    log.info("approximate index ready: %s", info)
    return index, info


def tune_nprobe(index, vectors: np.ndarray, *, target: float = RECALL_TARGET, queries: int = TUNING_QUERIES,
                seed: int = 0, k: int = 10) -> tuple[int, float, int]:
    """About the smallest nprobe whose recall@k on held-out queries reaches `target` (+ a margin).

    Returns (nprobe, its recall, number of queries). Doubles nprobe until the recall is reached,
    then bisects between the last two values down to an eighth of the value (each step is a search
    of all the queries).
    """
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(vectors), size=min(queries, len(vectors)), replace=False))
    exact = exact_neighbours(vectors, rows, k)
    goal = min(target + _MARGIN, 1.0)

    def recall(nprobe: int) -> float:
        index.nprobe = nprobe
        return recall_at_k(exact, search_leave_one_out(index, vectors, rows, k))

    low, high = 0, 1
    found = recall(high)
    while found < goal and high < index.nlist:
        low, high = high, min(2 * high, index.nlist)
        found = recall(high)
    while high - low > max(1, high // 8):
        middle = (low + high) // 2
        r = recall(middle)
        if r >= goal:
            high, found = middle, r
        else:
            low = middle
    return high, found, len(rows)


def exact_neighbours(vectors: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Scores of the k best other vectors for each of `rows`, by brute force: shape (len(rows), k)."""
    import faiss

    scores, ids = faiss.knn(np.ascontiguousarray(vectors[rows]), vectors, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    return _drop_self(scores, ids, rows)


def search_leave_one_out(index, vectors: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    scores, ids = index.search(np.ascontiguousarray(vectors[rows]), k + 1)
    return _drop_self(scores, ids, rows)


def _drop_self(scores: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each query's own row taken out of its results (or, if absent, the last result)."""
    own = ids == rows[:, None]
    drop = np.where(own.any(axis=1), own.argmax(axis=1), ids.shape[1] - 1)
    keep = np.ones_like(own)
    keep[np.arange(len(rows)), drop] = False
    return np.where(ids >= 0, scores, -np.inf)[keep].reshape(len(rows), -1)


def recall_at_k(exact: np.ndarray, approximate: np.ndarray) -> float:
    """Share of the approximate top k that belongs in the exact top k.

    Counted by score, not id: a result scoring at least the exact k-th best is a true neighbour,
    which counts ties (duplicate passages) right. IVF-Flat scores are exact, so this is sound.
    """
    k = exact.shape[1]
    kth = exact[:, -1:] - 1e-5
    return float((approximate[:, :k] >= kth).sum() / exact.size)
