import os
import tempfile

# The variant matrix checks correctness of the heuristic kernels; tuning every (spec, shape)
# key would compile hundreds of candidates. Tests of the tuner enable it themselves.
os.environ.setdefault("FLASHJIT_AUTOTUNE", "0")

# Keep the tests' kernels out of the user's cache unless a cache dir is already chosen.
if "FLASHJIT_CACHE_DIR" not in os.environ:
    os.environ["FLASHJIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="flashjit-pytest-cache-")
