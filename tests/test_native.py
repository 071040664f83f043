"""Running llama.cpp on any x86-64 CPU: repacking off where the CPU has AMX, a crash found in a child
process and explained in one line, and a library built for a CPU level rather than for this machine."""

from __future__ import annotations

import sys

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


def test_the_library_is_built_for_a_cpu_level_not_for_this_machine():
    """`make install` compiles llama.cpp for x86-64-v3 (AVX2). A `-march=native` build made on an AVX-512
    or AMX machine reports those here, and would die with an illegal instruction on a CI or AVX2 laptop."""
    llama_cpp = pytest.importorskip("llama_cpp")
    info = llama_cpp.llama_print_system_info().decode()
    features = {part.split("=")[0].strip() for part in info.replace("|", "\n").splitlines() if "= 1" in part}
    assert not {f for f in features if f.startswith(("AVX512", "AMX", "AVX_VNNI"))}, info
