"""The wheel's smoke test, run by scripts/test.sh (step wheel_venv) with the python of a fresh
virtual environment that holds only the manylinux wheel, from a folder outside the repository.

Checks that the installed wheel imports, finds NVRTC by itself (no rpath: the dlopen search of
runtime/include/flashjit/nvrtc_loader.h), compiles a real kernel without a GPU, and that without
NVRTC it still imports and emits CUDA, and says what to do when asked to compile.
"""

import os
import subprocess
import sys

import flashjit
from flashjit import Spec

pkg = os.path.dirname(os.path.abspath(flashjit.__file__))
assert pkg.startswith(os.path.abspath(sys.prefix) + os.sep), \
    f"flashjit was imported from {pkg}, not from the virtual environment {sys.prefix}"
assert "site-packages" in pkg, f"flashjit was imported from {pkg}, not from an installed wheel"

lib = flashjit.nvrtc_library()
print(f"flashjit {flashjit.__version__} from {pkg}")
print(f"NVRTC {lib['version']} from {lib['path']} ({lib['origin']})")
assert lib["version"].split(".")[0] == str(flashjit._C.nvrtc_built_major()), lib

spec = Spec(dtype="bf16", head_dim=128, num_heads_q=8, num_heads_kv=2, mask="causal")
info = flashjit.compile(spec, arch="sm_90a")
cubin = info.cubin
# A cubin is an ELF file for the CUDA machine (e_machine 190, EM_CUDA), holding the kernel's symbol.
assert cubin[:4] == b"\x7fELF", f"compile() returned {len(cubin)} bytes that are not an ELF image"
assert int.from_bytes(cubin[18:20], "little") == 190, "the image is an ELF file but not a CUDA cubin"
assert info.kernel_name.encode() in cubin, f"{info.kernel_name} is not in the cubin"
assert info.arch == "sm_90a" and info.registers > 0 and info.threads > 0, info
assert not info.cache_hit, "the venv's cache folder was fresh, yet compile() reported a hit"
again = flashjit.compile(spec, arch="sm_90a")
assert again.cache_hit and again.cubin == cubin
print(f"compiled {info.kernel_name}: {len(cubin)} bytes, {info.registers} registers, "
      f"{info.compile_ms:.0f} ms; second call a cache hit")

# Without NVRTC (an explicit FLASHJIT_NVRTC that does not exist): import and emit work, a
# compile raises CompileError naming the path it tried and the ways to fix it.
child = r"""
import flashjit
spec = flashjit.Spec(dtype="fp16", head_dim=64, mask="causal")
assert "__global__" in flashjit.emit(spec, arch="sm_90a")
try:
    flashjit.compile(spec, arch="sm_90a", use_cache=False)
except flashjit.CompileError as e:
    msg = str(e)
else:
    raise AssertionError("compile() worked without NVRTC")
for part in ("/nonexistent/libnvrtc.so.13 (FLASHJIT_NVRTC): not found", "pip install", "FLASHJIT_NVRTC to the full path"):
    assert part in msg, (part, msg)
print("without NVRTC: import and emit work; compile() says:", msg.splitlines()[0])
"""
env = dict(os.environ, FLASHJIT_NVRTC="/nonexistent/libnvrtc.so.13")
res = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=300)
sys.stdout.write(res.stdout)
assert res.returncode == 0, res.stdout + res.stderr
print("wheel smoke test: ok")
