import os
import tempfile

# Keep the tests' kernels out of the user's cache unless a cache dir is already chosen.
if "FLASHJIT_CACHE_DIR" not in os.environ:
    os.environ["FLASHJIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="flashjit-pytest-cache-")
