// The NVRTC loader (no GPU needed): the search order, the errors for each way a candidate
// can fail, and that the process's NVRTC is one of the listed candidates. The CLI tests at
// the end run a separate process, since this one's NVRTC is loaded once and kept.
#include <cuda.h>
#include <dlfcn.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cli_runner.h"
#include "flashjit/error.h"
#include "flashjit/nvrtc_compiler.h"
#include "flashjit/nvrtc_loader.h"

namespace {

using fjtest::has;

// Sets or unsets an environment variable for one scope and restores it afterwards.
struct EnvGuard {
  std::string name;
  std::optional<std::string> saved;
  explicit EnvGuard(std::string n) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) saved = v;
  }
  void set(const std::string& v) { ::setenv(name.c_str(), v.c_str(), 1); }
  void unset() { ::unsetenv(name.c_str()); }
  ~EnvGuard() {
    if (saved)
      ::setenv(name.c_str(), saved->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};

// Restores the loader's extra folders (none, as in a C++ program) after a test.
struct SearchDirsGuard {
  ~SearchDirsGuard() { flashjit::set_nvrtc_search_dirs({}, ""); }
};

std::vector<std::string> paths(const std::vector<flashjit::NvrtcCandidate>& cs) {
  std::vector<std::string> out;
  for (const auto& c : cs) out.push_back(c.path);
  return out;
}

std::string load_error(const std::vector<flashjit::NvrtcCandidate>& cs) {
  try {
    flashjit::load_nvrtc(cs);
  } catch (const flashjit::CompileError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("nvrtc loader: the soname follows the CUDA major flashjit was built with", "[nvrtc][loader]") {
  CHECK(flashjit::nvrtc_built_major() == CUDA_VERSION / 1000);
  CHECK(flashjit::nvrtc_soname() == "libnvrtc.so." + std::to_string(CUDA_VERSION / 1000));
}

TEST_CASE("nvrtc loader: the search order", "[nvrtc][loader]") {
  EnvGuard explicit_path("FLASHJIT_NVRTC"), cuda_home("CUDA_HOME"), cuda_path("CUDA_PATH");
  SearchDirsGuard dirs_guard;
  const std::string so = flashjit::nvrtc_soname();
  explicit_path.unset();
  cuda_home.set("/opt/cuda-home");
  cuda_path.set("/opt/cuda-path/");
  flashjit::set_nvrtc_search_dirs({"/site/nvidia/cu13/lib", "/site/nvidia/cuda_nvrtc/lib/"}, "pip test");

  const std::vector<flashjit::NvrtcCandidate> cs = flashjit::nvrtc_candidates();
  const std::vector<std::string> p = paths(cs);
  REQUIRE(p.size() >= 6);
  CHECK(p[0] == "/site/nvidia/cu13/lib/" + so);
  CHECK(cs[0].origin == "pip test");
  CHECK(p[1] == "/site/nvidia/cuda_nvrtc/lib/" + so);
  CHECK(p[2] == "/opt/cuda-home/lib64/" + so);
  CHECK(cs[2].origin == "$CUDA_HOME/lib64");
  CHECK(p[3] == "/opt/cuda-path/lib64/" + so);
  CHECK(p[4] == "/usr/local/cuda/lib64/" + so);
  // Last: the bare soname, for the dynamic loader's own search.
  CHECK(p.back() == so);
  CHECK(has(cs.back().origin, "LD_LIBRARY_PATH"));
  // No path twice (the build's toolkit is often /usr/local/cuda itself).
  for (std::size_t i = 0; i < p.size(); ++i)
    for (std::size_t j = i + 1; j < p.size(); ++j) CHECK(p[i] != p[j]);

  SECTION("FLASHJIT_NVRTC is the only candidate when set: no silent fallback") {
    explicit_path.set("/my/libnvrtc.so.13");
    const auto only = flashjit::nvrtc_candidates();
    REQUIRE(only.size() == 1);
    CHECK(only[0].path == "/my/libnvrtc.so.13");
    CHECK(only[0].origin == "FLASHJIT_NVRTC");
  }
}

TEST_CASE("nvrtc loader: every failure is named, with how to fix it", "[nvrtc][loader]") {
  const std::string err = load_error({{"/nonexistent/flashjit/libnvrtc.so.13", "test dir"},
                                      {"libm.so.6", "a library that is not NVRTC"},
                                      {"/etc/hostname", "a file that is not a library"}});
  INFO(err);
  CHECK(has(err, "none could be loaded"));
  CHECK(has(err, "/nonexistent/flashjit/libnvrtc.so.13 (test dir): not found"));
  // libm loads but has none of NVRTC's symbols: each missing one is named.
  CHECK(has(err, "libm.so.6 (a library that is not NVRTC): loaded, but lacks nvrtcGetErrorString, nvrtcVersion"));
  CHECK(has(err, "nvrtcGetCUBIN"));
  CHECK(has(err, "/etc/hostname (a file that is not a library): "));
  // The three ways out.
  CHECK(has(err, "install the CUDA " + std::to_string(flashjit::nvrtc_built_major()) + " toolkit"));
  CHECK(has(err, "pip install"));
  CHECK(has(err, "nvidia-cuda-nvrtc"));
  CHECK(has(err, "FLASHJIT_NVRTC"));
  CHECK(has(load_error({}), "(nothing)"));
}

TEST_CASE("nvrtc loader: the process's NVRTC came from the search and compiles", "[nvrtc][loader]") {
  const flashjit::NvrtcApi& api = flashjit::nvrtc();
  CHECK(flashjit::nvrtc_available());
  CHECK(&api == &flashjit::nvrtc());  // loaded once
  REQUIRE(api.handle != nullptr);
  CHECK(api.nvrtcCompileProgram != nullptr);
  CHECK(api.nvrtcGetCUBIN != nullptr);
  // The function really is NVRTC's: the loaded library's own symbol.
  CHECK(reinterpret_cast<void*>(api.nvrtcVersion) == dlsym(api.handle, "nvrtcVersion"));
  int major = 0, minor = 0;
  REQUIRE(api.nvrtcVersion(&major, &minor) == NVRTC_SUCCESS);
  CHECK(major == flashjit::nvrtc_built_major());
  CHECK(flashjit::nvrtc_version_string() == std::to_string(major) + "." + std::to_string(minor));
  bool listed = false;
  for (const auto& c : flashjit::nvrtc_candidates()) listed = listed || (c.path == api.path && c.origin == api.origin);
  CHECK(listed);
}

TEST_CASE("nvrtc loader: without NVRTC, emit works and compile names what it tried", "[nvrtc][loader][cli]") {
  const std::string env = std::string(fjtest::kNoGpuEnv) + " FLASHJIT_NVRTC=/nonexistent/libnvrtc.so.13";
  const std::string spec = R"({"dtype":"bf16","head_dim":64,"mask":"causal"})";

  fjtest::CliResult r = fjtest::run_cli({"emit", "--spec", spec, "--arch", "sm_90a"}, env);
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK(has(r.out, "__global__"));

  r = fjtest::run_cli({"--version"}, env);
  CHECK(r.status == 0);
  CHECK(has(r.out, "NVRTC: none loadable"));

  r = fjtest::run_cli({"compile", "--spec", spec, "--arch", "sm_90a", "--no-cache"}, env);
  CHECK(r.status != 0);
  CHECK(has(r.out, "/nonexistent/libnvrtc.so.13 (FLASHJIT_NVRTC): not found"));
  CHECK(has(r.out, "pip install"));
}
