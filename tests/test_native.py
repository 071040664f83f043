"""Running llama.cpp on any x86-64 CPU: repacking off where the CPU has AMX, a crash found in a child
process and explained in one line, and a library built for a CPU level rather than for this machine."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qa import ModelError, native

# /proc/cpuinfo "flags" lines, shortened, of the three kinds of machine the assistant must run on.
AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse sse2 avx f16c fma avx2 bmi2\n"
AVX512 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c avx512f avx512bw avx512_vnni\n"
SAPPHIRE_RAPIDS = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8488C\n"
                   "flags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni avx_vnni amx_bf16 amx_tile amx_int8\n")


def test_repacking_is_off_unless_asked_for(monkeypatch):
    assert native.repack_weights("auto") is False and native.repack_weights("") is False
    monkeypatch.delenv("QA_REPACK", raising=False)
    assert native.repack_weights() is False


@pytest.mark.parametrize("setting, repack", [("on", True), ("off", False), ("OFF", False)])
def test_qa_repack_overrides_the_choice(setting, repack):
    assert native.repack_weights(setting) is repack


def test_a_misspelt_qa_repack_is_a_clear_error():
    with pytest.raises(ModelError, match="QA_REPACK must be on, off or auto"):
        native.repack_weights(setting="maybe")


def test_models_loaded_inside_get_the_setting_and_others_do_not():
    llama_cpp = pytest.importorskip("llama_cpp.llama_cpp")
    with native.model_params(repack=False):
        assert llama_cpp.llama_model_default_params().use_extra_bufts is False
    assert llama_cpp.llama_model_default_params().use_extra_bufts is True
    with native.model_params(repack=True):
        assert llama_cpp.llama_model_default_params().use_extra_bufts is True


def _fake_model(tmp_path):
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    return model


def test_a_crash_in_the_child_names_the_setting_to_change(tmp_path):
    pytest.importorskip("llama_cpp")
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    with pytest.raises(ModelError) as error:
        native.check(_fake_model(tmp_path), repack=True, cache_dir=tmp_path, command=crash)
    assert "SIGSEGV" in str(error.value) and "QA_REPACK=off" in str(error.value)
    assert "\n" not in str(error.value)
    with pytest.raises(ModelError, match="repacking already off.*make clean install"):
        native.check(_fake_model(tmp_path), repack=False, cache_dir=tmp_path, command=crash)


def test_an_illegal_instruction_asks_for_a_rebuild(tmp_path):
    pytest.importorskip("llama_cpp")
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"]
    with pytest.raises(ModelError, match="compiled for another processor.*make clean install"):
        native.check(_fake_model(tmp_path), repack=True, cache_dir=tmp_path, command=crash)


def test_a_pass_is_remembered_and_a_crash_is_not(tmp_path):
    pytest.importorskip("llama_cpp")
    model, runs = _fake_model(tmp_path), tmp_path / "runs"
    count = [sys.executable, "-c", f"open({str(runs)!r}, 'a').write('x')"]
    native.check(model, repack=True, cache_dir=tmp_path, command=count)
    native.check(model, repack=True, cache_dir=tmp_path, command=count)
    assert runs.read_text() == "x"
    native.check(model, repack=False, cache_dir=tmp_path, command=count)  # another setting: checked anew
    assert runs.read_text() == "xx"

    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF" + bytes(8))
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    for _ in range(2):
        with pytest.raises(ModelError):
            native.check(other, repack=True, cache_dir=tmp_path, command=crash)


def test_a_check_is_repeated_on_another_cpu(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    model, runs = _fake_model(tmp_path), tmp_path / "runs"
    count = [sys.executable, "-c", f"open({str(runs)!r}, 'a').write('x')"]
    read = native.cpu_flags
    monkeypatch.setattr(native, "cpu_flags", lambda cpuinfo=None: read(AVX2_ONLY))
    native.check(model, repack=True, cache_dir=tmp_path, command=count)
    monkeypatch.setattr(native, "cpu_flags", lambda cpuinfo=None: read(AVX512))
    native.check(model, repack=True, cache_dir=tmp_path, command=count)
    assert runs.read_text() == "xx"


ROOT = Path(__file__).resolve().parent.parent
V3 = "fpu sse sse2 avx avx2 fma f16c bmi2"
V4 = V3 + " avx512f avx512bw avx512cd avx512dq avx512vl"
V3_CMAKE = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
# llama.cpp's names for what a library was compiled with (llama_print_system_info), as Linux names the flags
COMPILED_FOR = {"AVX": "avx", "AVX2": "avx2", "FMA": "fma", "F16C": "f16c", "BMI2": "bmi2", "AVX_VNNI": "avx_vnni",
                "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni",
                "AVX512_BF16": "avx512_bf16", "AMX_INT8": "amx_int8"}


@pytest.mark.parametrize("flags, level, cmake", [
    (V3, "x86-64-v3", V3_CMAKE),   # the CI machine's EPYC: the level (and so the cached wheel) of before
    (V4 + " avx512_vnni avx512vbmi avx512_bf16 avx_vnni", "x86-64-v4-vbmi-vnni-bf16",   # AMD Zen 4
     V3_CMAKE + " -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON"),
    (V4 + " avx512_vnni avx512vbmi avx512_bf16 amx_tile amx_int8 amx_bf16", "x86-64-v4-vbmi-vnni-bf16",   # Sapphire Rapids
     V3_CMAKE + " -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON"),
    (V4, "x86-64-v4", V3_CMAKE + " -DGGML_AVX512=ON"),   # Skylake-X
    (V4.replace(" avx512dq", ""), "x86-64-v3", V3_CMAKE),   # AVX-512 without all of x86-64-v4 (Knights Landing)
    ("fpu sse sse2 avx", "baseline", "-DGGML_NATIVE=OFF"),   # before AVX2
])
def test_make_builds_llama_cpp_for_the_best_named_level_the_cpu_has(tmp_path, flags, level, cmake):
    """`make llama` compiles for x86-64-v4 where the CPU has AVX-512, v3 where it has AVX2, never for
    AMX, and names the wheel's folder after the level; read with other CPUs' /proc/cpuinfo."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    done = subprocess.run(["make", "-s", "--no-print-directory", "llama-level", f"CPUINFO={cpuinfo}"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    assert done.stdout.split(None, 1) == [level, cmake + "\n"]


def test_the_library_uses_no_instruction_this_cpu_lacks_and_the_best_level_it_has():
    """The installed library was compiled for this CPU's level (`make llama-level`): nothing this CPU
    lacks, which would die with an illegal instruction (a `.venv` or wheel from an AVX-512 machine on an
    AVX2 one), no AMX, and AVX-512 where the CPU has x86-64-v4, which reads prompts 2.2 times faster."""
    llama_cpp = pytest.importorskip("llama_cpp")
    info = llama_cpp.llama_print_system_info().decode()
    features = {part.split("=")[0].strip() for part in info.replace("|", "\n").splitlines() if "= 1" in part}
    flags = native.cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags")
    lacking = {f for f in features if f in COMPILED_FOR and COMPILED_FOR[f] not in flags}
    assert not lacking, (lacking, info)
    assert not {f for f in features if f.startswith("AMX")}, info
    if set(V4.split()) <= flags:
        assert "AVX512" in features, f"this CPU has AVX-512 but the library was built without it: {info}"

