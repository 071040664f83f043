"""The real export: the packaged all-MiniLM-L6-v2 to ONNX (fp32 and int8), checked against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from index import SentenceTransformerEmbedder, onnx_backend

pytestmark = pytest.mark.slow

TEXTS = [
    "The central bank left interest rates unchanged on Thursday and said inflation was slowing.",
    "Rescuers pulled two survivors from the rubble of a collapsed apartment block after the earthquake.",
    "Who won the mayoral election in the river town?",
    "Shares of the carmaker fell 8% after it cut its sales forecast for the year, citing weak demand in China "
    "and the cost of a recall of 300,000 vehicles with faulty brakes.",
    "A record wheat harvest pushed grain prices down for a third month.",
    "NATO ambassadors met in Budapest.",
]


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return SentenceTransformerEmbedder(backend="torch").embed(TEXTS)


@pytest.mark.parametrize(("backend", "lowest", "highest"), [
    ("onnx", 0.9999, 1.0001),        # the same function: it may share torch's name in an index
    ("onnx-int8", 0.98, 0.99999),    # close, but really the quantized model (not torch again)
])
def test_export_of_the_packaged_model_agrees_with_torch(tmp_path, monkeypatch, torch_vectors,
                                                        backend, lowest, highest):
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path))
    vectors = SentenceTransformerEmbedder(backend=backend, progress=False).embed(TEXTS)
    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    cosines = np.sum(vectors * torch_vectors, axis=1)
    assert lowest < cosines.min() and cosines.max() < highest, cosines

    exports = list((tmp_path / "embedders").glob(f"*-{backend}/model.onnx"))
    assert len(exports) == 1

    def no_second_export(*args):
        raise AssertionError("the cached export should have been reused")

    monkeypatch.setattr(onnx_backend, "export", no_second_export)
    again = SentenceTransformerEmbedder(backend=backend, progress=False).embed(TEXTS[:2])
    assert np.allclose(again, vectors[:2], atol=1e-5)
