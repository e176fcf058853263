// flashjit tune's progress display on stderr: one line redrawn with '\r' while a (spec, shape)
// pair tunes, when stderr is a terminal; nothing at all otherwise, so logs and the outputs
// quoted in docs/cli.md stay as they were. The formatting is separate, for the unit tests.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>

namespace flashjit::cli {

struct TuneProgressState {
  std::size_t spec = 1, specs = 1, shape = 1, shapes = 1;  // 1-based positions
  std::size_t candidates = 0, compiled = 0, timed = 0;     // TuneProgress
  double compile_s = 0.0;  // seconds since the pair's compiles started
  double timing_s = 0.0;   // seconds since its timing started (0 while compiling)
};

// Seconds left, from the rate of the current phase: compiles while some are left, then
// timings; nullopt before the phase has finished one candidate (no rate yet).
std::optional<double> eta_seconds(const TuneProgressState& s);
// "4 s", "59 s", "1 min 05 s", "2 h 03 min"; "?" for nullopt.
std::string format_eta(std::optional<double> seconds);
// "[spec 1/2, shape 1/3] compiling 5/12 candidates, timing 3/12, ETA 4 s"
std::string format_progress(const TuneProgressState& s);

// The redrawn line. `tty` false: every call does nothing. `restore`: text the terminal had on
// the line before the first draw (stdout's "[1/2] spec | shape ... " when stdout is the same
// terminal), written back by finish() so the line reads as it would have without the display.
class ProgressLine {
 public:
  ProgressLine(std::FILE* out, bool tty, std::string restore = "");
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  void draw(const std::string& text);  // truncated to the terminal's width
  void finish();                       // clears the line (then writes `restore`); idempotent

 private:
  std::FILE* out_;
  bool tty_, drawn_ = false;
  std::string restore_;
};

// Whether a file descriptor is a terminal (isatty), and the terminal's width (80 if unknown).
bool is_terminal(int fd);
std::size_t terminal_width(int fd);

}  // namespace flashjit::cli
