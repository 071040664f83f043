"""Prompt processing and generation speed with llama.cpp's weight repacking on and off.

Repacking (`use_extra_bufts`) is what crashes on AMX CPUs (qa/native.py), so it is off there; this
measures what it is worth where it is kept on. Each setting runs in its own process (a model is loaded
once per process), the two alternate `--repeats` times, and the median of each is printed:

    .venv/bin/python bench/repack.py                      # the default 1.5B model
    .venv/bin/python bench/repack.py --model qwen2.5-coder-0.5b-instruct-q4_k_m

Prompt processing evaluates a ~400-token article excerpt from an empty cache; generation decodes 64
single tokens after it (the cost of writing, without sampling).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(model: str, repack: bool, prompt_tokens: int, generate: int) -> dict:
    from qa import native
    from qa.models import resolve_model

    path = resolve_model(model, progress=False)
    start = time.perf_counter()
    llm = native.load_llama(path, repack=repack, n_ctx=1024, n_threads=os.cpu_count(), verbose=False)
    loaded = time.perf_counter() - start
    text = " ".join(p.read_text() for p in sorted((ROOT / "data" / "articles").glob("*.txt")))
    tokens = llm.tokenize(text.encode())[:prompt_tokens]
    llm.eval(tokens[:32])  # warm-up: threads started, first kernels run
    llm.reset()
    start = time.perf_counter()
    llm.eval(tokens)
    prompt_s = time.perf_counter() - start
    start = time.perf_counter()
    for token in tokens[:generate]:
        llm.eval([token])
    generate_s = time.perf_counter() - start
    return {"load_s": loaded, "prompt_tps": len(tokens) / prompt_s, "generate_tps": generate / generate_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="packaged model name or GGUF path (default: the default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=400)
    parser.add_argument("--generate", type=int, default=64)
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.child == "on", args.prompt_tokens, args.generate)))
        return

    from qa import native

    runs: dict[str, list[dict]] = {"on": [], "off": []}
    for _ in range(args.repeats):
        for setting in runs:
            command = [sys.executable, __file__, "--child", setting, "--prompt-tokens", str(args.prompt_tokens),
                       "--generate", str(args.generate)] + (["--model", args.model] if args.model else [])
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "QA_REPACK": setting})
            if done.returncode:
                print(f"repacking {setting}: the child died with status {done.returncode}\n{done.stderr[-1500:]}")
                continue
            runs[setting].append(json.loads(done.stdout.strip().splitlines()[-1]))
    flags = native.cpu_flags()
    print(f"CPU flags: avx2={'avx2' in flags} avx512f={'avx512f' in flags} amx={bool(native.AMX_FLAGS & flags)}; "
          f"this CPU's default: repacking {'on' if native.repack_weights('auto') else 'off'}")
    print(f"model: {args.model or 'default'}, {args.prompt_tokens}-token prompt, {args.generate} decoded tokens, "
          f"median of {args.repeats}")
    print("| repacking | prompt tokens/s | generation tokens/s | load s |")
    print("|---|---|---|---|")
    for setting, rows in runs.items():
        if rows:
            med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            print(f"| {setting} | {med['prompt_tps']:.1f} | {med['generate_tps']:.1f} | {med['load_s']:.2f} |")


if __name__ == "__main__":
    main()
