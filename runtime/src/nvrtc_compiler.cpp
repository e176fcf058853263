// NVRTC: generated CUDA C++ -> cubin. The device templates travel as in-memory headers and
// include no system or CUDA header (templates/flashjit/types.cuh), so a compile passes no -I
// and needs no toolkit headers at run time: only libnvrtc, which nvrtc_loader.cpp finds.
#include "flashjit/nvrtc_compiler.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>
#include <sstream>
#include <system_error>

#include "flashjit/error.h"
#include "flashjit/nvrtc_loader.h"

namespace flashjit {
namespace {

// Targets flashjit knows how to generate for. Arch-specific ('a') variants exist only
// from Hopper on, so "sm_80a" is rejected here rather than by NVRTC later.
struct KnownArch {
  int number;
  bool has_a_variant;
};
// sm_75 (Turing) is not listed: the kernels need cp.async and bf16 mma.sync (sm_80+).
constexpr KnownArch kKnownArchs[] = {{80, false}, {86, false}, {87, false}, {89, false},
                                     {90, true},  {100, true}, {103, true}, {120, true}};

void nvrtc_check(nvrtcResult r, const char* what) {
  if (r != NVRTC_SUCCESS)
    throw CompileError(std::string("flashjit: NVRTC ") + what + " failed: " + nvrtc().nvrtcGetErrorString(r));
}

// The arch numbers the loaded NVRTC can target (e.g. 75, 80, ..., 120). Throws (and is
// retried by the next call) when no NVRTC can be loaded.
const std::vector<int>& nvrtc_supported_archs() {
  static const std::vector<int> archs = [] {
    const NvrtcApi& api = nvrtc();
    int n = 0;
    nvrtc_check(api.nvrtcGetNumSupportedArchs(&n), "nvrtcGetNumSupportedArchs");
    std::vector<int> v(static_cast<std::size_t>(std::max(n, 0)));
    if (n > 0) nvrtc_check(api.nvrtcGetSupportedArchs(v.data()), "nvrtcGetSupportedArchs");
    return v;
  }();
  return archs;
}

// Owns an nvrtcProgram so every exit path (including throws) destroys it.
struct ProgramGuard {
  nvrtcProgram prog = nullptr;
  ~ProgramGuard() {
    if (prog) nvrtc().nvrtcDestroyProgram(&prog);  // prog exists, so nvrtc() is loaded
  }
};

// A file-name-safe version of the source name for the failure dump.
std::string sanitize_name(std::string name) {
  if (name.size() > 3 && name.compare(name.size() - 3, 3, ".cu") == 0) name.resize(name.size() - 3);
  for (char& c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    if (!ok) c = '_';
  }
  if (name.empty()) name = "kernel";
  return name;
}

// Writes the source that failed to compile where the user can open it. Returns the path,
// or an explanation if it could not be written (the log is still reported). The file is
// new, private and exclusive (mkstemps: O_CREAT|O_EXCL, mode 0600, a random name), so a
// link or file another user planted in /tmp is never followed or overwritten.
std::string dump_failed_source(const std::string& source, const std::string& source_name) {
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::temp_directory_path(ec);
  if (ec) return "<not written: no temp directory: " + ec.message() + ">";
  std::string path = (dir / ("flashjit-failed-" + sanitize_name(source_name) + "-XXXXXX.cu")).string();
  const int fd = ::mkstemps(&path[0], 3);
  if (fd < 0) return "<not written: cannot create a file in " + dir.string() + ": " + std::strerror(errno) + ">";
  const char* p = source.data();
  std::size_t left = source.size();
  bool ok = true;
  while (left > 0 && ok) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ok = false;
    else p += n, left -= static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) ok = false;
  if (!ok) {
    ::unlink(path.c_str());
    return "<not written: cannot write " + path + ">";
  }
  return path;
}

int parse_int(const std::string& s) {
  try {
    return std::stoi(s);
  } catch (const std::exception&) {
    return -1;  // absurdly large numbers: report as unknown rather than wrong
  }
}

int nvrtc_major_version() {
  static const int major = [] {
    int maj = 0, min = 0;
    nvrtc_check(nvrtc().nvrtcVersion(&maj, &min), "nvrtcVersion");
    return maj;
  }();
  return major;
}

}  // namespace

std::vector<std::string> nvrtc_options(const std::string& arch, bool quick) {
  // No fast-math flags: the kernels' softmax uses exp2 with explicitly pre-scaled
  // inputs, and the generated code chooses its approximate intrinsics itself.
  // --ptxas-options=-v puts the register/smem/spill report into the log.
  std::vector<std::string> opts = {"-arch=" + arch, "-std=c++17", "-default-device", "--ptxas-options=-v",
                                   "-DFLASHJIT_NVRTC=1"};
  // -lineinfo (source lines for profilers) writes the compiling process's working directory
  // into the cubin, so one source would give different cubins in different directories and
  // `cache import --verify` could not compare an imported kernel with its rebuild. Opt-in.
  static const bool lineinfo = [] {
    const char* v = std::getenv("FLASHJIT_LINEINFO");
    return v != nullptr && std::string(v) == "1";
  }();
  if (lineinfo) opts.push_back("-lineinfo");
  // NVRTC 13 caches cubins in the driver's compute cache (~/.nv/ComputeCache) when a
  // driver is installed, and a hit there returns the cubin with an EMPTY log: no ptxas
  // report, so no register/spill numbers (seen on an H200 machine). flashjit keeps its
  // own cache keyed on everything, so NVRTC's is redundant: turn it off.
  if (nvrtc_major_version() >= 13) opts.push_back("-no-cache");
  if (quick) opts.push_back("--Ofast-compile=max");  // NVRTC 12.8 and later
  return opts;
}

std::string nvrtc_version_string() {
  int major = 0, minor = 0;
  nvrtc_check(nvrtc().nvrtcVersion(&major, &minor), "nvrtcVersion");
  return std::to_string(major) + "." + std::to_string(minor);
}

void check_arch(const std::string& arch) {
  static const std::regex pattern("sm_([0-9]+)(a?)");
  // Without a loadable NVRTC the arch is checked against flashjit's own list only: emit and
  // emit_ir need no compiler, and a compile then stops at nvrtc() with its own message.
  const std::vector<int>* supported = nvrtc_available() ? &nvrtc_supported_archs() : nullptr;
  auto nvrtc_has = [&](int n) {
    return supported == nullptr || std::find(supported->begin(), supported->end(), n) != supported->end();
  };

  std::string allowed;
  for (const KnownArch& k : kKnownArchs) {
    if (!nvrtc_has(k.number)) continue;
    allowed += (allowed.empty() ? "" : ", ") + ("sm_" + std::to_string(k.number));
    if (k.has_a_variant) allowed += ", sm_" + std::to_string(k.number) + "a";
  }

  std::smatch m;
  if (std::regex_match(arch, m, pattern)) {
    const int number = parse_int(m[1].str());
    const bool a_variant = m[2].length() > 0;
    for (const KnownArch& k : kKnownArchs) {
      if (k.number != number || (a_variant && !k.has_a_variant)) continue;
      if (!nvrtc_has(number))
        throw ArgumentError("arch", "'" + arch + "' is not supported by NVRTC " + nvrtc_version_string() +
                                        "; allowed: " + allowed);
      return;
    }
  }
  throw ArgumentError("arch", "'" + arch + "' is not a known target; allowed: " + allowed);
}

NvrtcOutput nvrtc_compile(const std::string& source, const std::string& source_name, const std::string& arch,
                          bool quick) {
  check_arch(arch);

  const std::vector<EmbeddedFile>& templates = embedded_templates();
  std::vector<const char*> header_names, header_contents;
  for (const EmbeddedFile& f : templates) {
    header_names.push_back(f.name);
    header_contents.push_back(f.content);
  }

  const NvrtcApi& api = nvrtc();  // throws, listing where it looked, if there is no NVRTC
  ProgramGuard guard;
  nvrtc_check(api.nvrtcCreateProgram(&guard.prog, source.c_str(), source_name.c_str(),
                                 static_cast<int>(header_names.size()), header_contents.data(),
                                 header_names.data()),
              "nvrtcCreateProgram");

  const std::vector<std::string> options = nvrtc_options(arch, quick);
  std::vector<const char*> option_ptrs;
  for (const std::string& o : options) option_ptrs.push_back(o.c_str());

  const auto t0 = std::chrono::steady_clock::now();
  const nvrtcResult compile_result =
      api.nvrtcCompileProgram(guard.prog, static_cast<int>(option_ptrs.size()), option_ptrs.data());
  const auto t1 = std::chrono::steady_clock::now();

  // The log is read on success too: ptxas' -v report is in it.
  NvrtcOutput out;
  std::size_t log_size = 0;
  nvrtc_check(api.nvrtcGetProgramLogSize(guard.prog, &log_size), "nvrtcGetProgramLogSize");
  if (log_size > 0) {
    out.log.resize(log_size);
    nvrtc_check(api.nvrtcGetProgramLog(guard.prog, &out.log[0]), "nvrtcGetProgramLog");
    while (!out.log.empty() && out.log.back() == '\0') out.log.pop_back();  // size counts the NUL
  }

  if (compile_result != NVRTC_SUCCESS) {
    const std::string path = dump_failed_source(source, source_name);
    throw CompileError("flashjit: NVRTC failed to compile " + source_name + " for " + arch + ": " +
                       api.nvrtcGetErrorString(compile_result) + "\n" + out.log + "\nsource written to " + path);
  }

  std::size_t cubin_size = 0;
  nvrtc_check(api.nvrtcGetCUBINSize(guard.prog, &cubin_size), "nvrtcGetCUBINSize");
  if (cubin_size == 0)
    throw CompileError("flashjit: NVRTC produced no cubin for " + source_name + " (arch " + arch +
                       " must be a real sm_ target)");
  out.cubin.resize(cubin_size);
  nvrtc_check(api.nvrtcGetCUBIN(guard.prog, &out.cubin[0]), "nvrtcGetCUBIN");

  out.compile_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  out.resources = parse_ptxas_report(out.log);
  return out;
}

ResourceUsage parse_ptxas_report(const std::string& log) {
  // ptxas -v prints, per function:
  //   ptxas info    : Function properties for flash_fwd
  //       0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
  //   ptxas info    : Used 168 registers, used 1 barriers, 16384 bytes smem, 544 bytes cmem[0]
  // A flashjit module holds one kernel; if several functions report, the largest value
  // of each field is kept, which is what the most demanding one needs.
  static const std::regex registers_re("Used ([0-9]+) registers");
  static const std::regex smem_re("([0-9]+) bytes smem");
  static const std::regex stack_re("([0-9]+) bytes stack frame");
  static const std::regex stores_re("([0-9]+) bytes spill stores");
  static const std::regex loads_re("([0-9]+) bytes spill loads");

  ResourceUsage r;
  auto take_max = [](int& field, int value) {
    if (value >= 0 && value > field) field = value;
  };
  std::istringstream in(log);
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, registers_re)) {
      take_max(r.registers, parse_int(m[1].str()));
      // ptxas omits "bytes smem" when a function has no static shared memory.
      if (std::regex_search(line, m, smem_re))
        take_max(r.shared_static_bytes, parse_int(m[1].str()));
      else
        take_max(r.shared_static_bytes, 0);
    }
    if (std::regex_search(line, m, stack_re)) take_max(r.stack_frame_bytes, parse_int(m[1].str()));
    if (std::regex_search(line, m, stores_re)) take_max(r.spill_store_bytes, parse_int(m[1].str()));
    if (std::regex_search(line, m, loads_re)) take_max(r.spill_load_bytes, parse_int(m[1].str()));
  }
  return r;
}

}  // namespace flashjit
