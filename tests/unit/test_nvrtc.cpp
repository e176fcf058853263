// NVRTC compilation (no GPU needed): real template headers, cubin output, the ptxas
// report, compile errors, arch validation.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "catch.hpp"
#include "flashjit/error.h"
#include "flashjit/nvrtc_compiler.h"

namespace {

// Uses a real embedded template, so the in-memory header mechanism is exercised.
const char* kBandKernel = R"(
#include "flashjit/band_mask.cuh"

extern "C" __global__ void band_tiles(const flashjit::Band* masks, int* out, long long seqlen_q,
                                      long long seqlen_k) {
  const flashjit::Band m = masks[threadIdx.x % 4];
  const long long q0 = (long long)blockIdx.x * 128;
  const flashjit::KvTileRange r = flashjit::band_kv_tiles(m, q0, 128, seqlen_q, seqlen_k, 64);
  int visible = 0;
  for (int n = r.begin; n < r.end; ++n) visible += flashjit::tile_is_full(r, n) ? 2 : 1;
  int* o = out + 5 * (blockIdx.x * blockDim.x + threadIdx.x);
  o[0] = r.begin;
  o[1] = r.end;
  o[2] = r.full_begin;
  o[3] = r.full_end;
  o[4] = visible + (flashjit::band_visible(m, q0, q0, seqlen_k) ? 1 : 0);
}
)";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("the band_mask template is embedded", "[nvrtc]") {
  bool found = false;
  for (const auto& f : flashjit::embedded_templates())
    if (std::string(f.name) == "flashjit/band_mask.cuh") {
      found = true;
      CHECK(std::string(f.content).find("band_kv_tiles") != std::string::npos);
    }
  CHECK(found);
}

TEST_CASE("nvrtc_compile builds a cubin that uses a template header", "[nvrtc]") {
  const std::string arch = GENERATE(std::string("sm_80"), std::string("sm_90a"));
  INFO("arch " << arch);
  const flashjit::NvrtcOutput out = flashjit::nvrtc_compile(kBandKernel, "band_tiles.cu", arch);
  REQUIRE(out.cubin.size() > 4);
  CHECK(out.cubin.compare(0, 4, std::string("\x7f" "ELF", 4)) == 0);
  INFO("log:\n" << out.log);
  CHECK(out.log.find("ptxas") != std::string::npos);  // --ptxas-options=-v report captured
  CHECK(out.resources.registers > 0);
  CHECK(out.resources.registers <= 255);
  CHECK(out.resources.shared_static_bytes == 0);  // the kernel declares no __shared__
  CHECK(out.resources.stack_frame_bytes >= 0);
  CHECK(out.resources.spill_store_bytes >= 0);
  CHECK(out.resources.spill_load_bytes >= 0);
  CHECK(out.compile_ms > 0.0);
}

TEST_CASE("nvrtc_options names the arch and asks for the ptxas report", "[nvrtc]") {
  const auto opts = flashjit::nvrtc_options("sm_90a");
  auto has = [&](const std::string& o) { return std::find(opts.begin(), opts.end(), o) != opts.end(); };
  CHECK(has("-arch=sm_90a"));
  CHECK(has("-std=c++17"));
  CHECK(has("--ptxas-options=-v"));
  CHECK_FALSE(has("--use_fast_math"));
  const std::string v = flashjit::nvrtc_version_string();
  CHECK(v.find('.') != std::string::npos);
  CHECK(std::stoi(v) >= 11);
  // NVRTC 13's own cache (the driver's compute cache) returns hits without the ptxas
  // report, so it must be off whenever the option exists.
  if (std::stoi(v) >= 13) CHECK(has("-no-cache"));
}

TEST_CASE("a compile error carries NVRTC's message and the dumped source", "[nvrtc]") {
  const std::string bad = "extern \"C\" __global__ void broken(int* p) { p[0] = undeclared_thing; }\n";
  std::string message;
  try {
    flashjit::nvrtc_compile(bad, "broken_kernel.cu", "sm_80");
    FAIL("nvrtc_compile accepted a source with an undeclared identifier");
  } catch (const flashjit::CompileError& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(message.find("undeclared_thing") != std::string::npos);
  CHECK(message.find("is undefined") != std::string::npos);  // NVRTC's diagnostic text
  const std::string marker = "source written to ";
  const auto pos = message.find(marker);
  REQUIRE(pos != std::string::npos);
  std::string path = message.substr(pos + marker.size());
  path = path.substr(0, path.find('\n'));
  REQUIRE(std::filesystem::exists(path));
  // A fresh private file per failure (mkstemps): "flashjit-failed-broken_kernel-XXXXXX.cu", mode 0600.
  const std::string name = std::filesystem::path(path).filename().string();
  CHECK(name.rfind("flashjit-failed-broken_kernel-", 0) == 0);
  CHECK(name.size() == std::string("flashjit-failed-broken_kernel-XXXXXX.cu").size());
  const auto perms = std::filesystem::status(path).permissions();
  CHECK((perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all)) ==
        std::filesystem::perms::none);
  CHECK(slurp(path) == bad);
  std::filesystem::remove(path);
}

TEST_CASE("a failed compile never writes through a planted link in the temp dir", "[nvrtc]") {
  // Before: the dump went to the predictable /tmp/flashjit-failed-<name>.cu via a rename,
  // so anyone could pre-create that name (or a link) and read or redirect the source.
  namespace fs = std::filesystem;
  const fs::path planted = fs::temp_directory_path() / "flashjit-failed-planted_kernel.cu";
  const fs::path target = fs::temp_directory_path() / "flashjit-planted-target.txt";
  std::error_code ec;
  fs::remove(planted, ec);
  { std::ofstream(target) << "untouched"; }
  fs::create_symlink(target, planted);
  std::string message;
  try {
    flashjit::nvrtc_compile("this is not C++\n", "planted_kernel.cu", "sm_80");
  } catch (const flashjit::CompileError& e) {
    message = e.what();
  }
  CHECK(slurp(target.string()) == "untouched");
  CHECK(fs::is_symlink(fs::symlink_status(planted)));
  const auto pos = message.find("source written to ");
  REQUIRE(pos != std::string::npos);
  const std::string path = message.substr(pos + 18, message.find('\n', pos) - pos - 18);
  CHECK(path != planted.string());
  fs::remove(path, ec);
  fs::remove(planted, ec);
  fs::remove(target, ec);
}

TEST_CASE("check_arch accepts known targets and rejects others", "[nvrtc]") {
  CHECK_NOTHROW(flashjit::check_arch("sm_80"));
  CHECK_NOTHROW(flashjit::check_arch("sm_86"));
  CHECK_NOTHROW(flashjit::check_arch("sm_89"));
  CHECK_NOTHROW(flashjit::check_arch("sm_90"));
  CHECK_NOTHROW(flashjit::check_arch("sm_90a"));
  CHECK_NOTHROW(flashjit::check_arch("sm_100a"));

  // sm_75 used to be listed although every flashjit kernel fails in ptxas there (cp.async,
  // bf16 mma.sync are sm_80+): it is not a target.
  for (const std::string bad : {"sm_75", "sm_91", "gfx90a", "sm_80a", "SM_80", "sm_", "", "sm_90ab", "compute_90a"}) {
    INFO("arch '" << bad << "'");
    try {
      flashjit::check_arch(bad);
      FAIL("check_arch accepted '" << bad << "'");
    } catch (const flashjit::ArgumentError& e) {
      CHECK(e.param() == "arch");
      const std::string msg = e.what();
      CHECK(msg.find("'" + bad + "'") != std::string::npos);
      CHECK(msg.find("sm_90a") != std::string::npos);  // lists what is allowed
      CHECK(msg.find("sm_75,") == std::string::npos);
    }
  }
  // nvrtc_compile validates first, so a bad arch never reaches NVRTC.
  CHECK_THROWS_AS(flashjit::nvrtc_compile(kBandKernel, "k.cu", "sm_91"), flashjit::ArgumentError);
}

TEST_CASE("parse_ptxas_report reads registers, smem, stack and spills", "[nvrtc]") {
  SECTION("a kernel with static shared memory and spills") {
    const std::string log =
        "ptxas info    : 0 bytes gmem\n"
        "ptxas info    : Compiling entry function 'flash_fwd_bf16_d128' for 'sm_90a'\n"
        "ptxas info    : Function properties for flash_fwd_bf16_d128\n"
        "    24 bytes stack frame, 16 bytes spill stores, 20 bytes spill loads\n"
        "ptxas info    : Used 168 registers, used 1 barriers, 16384 bytes smem, 544 bytes cmem[0]\n";
    const auto r = flashjit::parse_ptxas_report(log);
    CHECK(r.registers == 168);
    CHECK(r.shared_static_bytes == 16384);
    CHECK(r.stack_frame_bytes == 24);
    CHECK(r.spill_store_bytes == 16);
    CHECK(r.spill_load_bytes == 20);
  }
  SECTION("no smem mentioned means none") {
    const std::string log =
        "ptxas info    : Compiling entry function 'k' for 'sm_80'\n"
        "ptxas info    : Function properties for k\n"
        "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
        "ptxas info    : Used 32 registers, 380 bytes cmem[0]\n";
    const auto r = flashjit::parse_ptxas_report(log);
    CHECK(r.registers == 32);
    CHECK(r.shared_static_bytes == 0);
    CHECK(r.stack_frame_bytes == 0);
    CHECK(r.spill_store_bytes == 0);
    CHECK(r.spill_load_bytes == 0);
  }
  SECTION("several functions: the largest of each") {
    const std::string log =
        "ptxas info    : Function properties for helper\n"
        "    40 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
        "ptxas info    : Used 12 registers, 0 bytes smem\n"
        "ptxas info    : Function properties for big\n"
        "    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n"
        "ptxas info    : Used 200 registers, used 1 barriers, 49152 bytes smem, 400 bytes cmem[0]\n";
    const auto r = flashjit::parse_ptxas_report(log);
    CHECK(r.registers == 200);
    CHECK(r.shared_static_bytes == 49152);
    CHECK(r.stack_frame_bytes == 40);
    CHECK(r.spill_store_bytes == 4);
    CHECK(r.spill_load_bytes == 4);
  }
  SECTION("no report: everything unknown") {
    const auto r = flashjit::parse_ptxas_report("warning: something unrelated\n");
    CHECK(r.registers == -1);
    CHECK(r.shared_static_bytes == -1);
    CHECK(r.stack_frame_bytes == -1);
    CHECK(r.spill_store_bytes == -1);
    CHECK(r.spill_load_bytes == -1);
  }
}
