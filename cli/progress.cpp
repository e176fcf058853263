// flashjit tune's progress line (see progress.h).
#include "progress.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmath>

namespace flashjit::cli {

std::optional<double> eta_seconds(const TuneProgressState& s) {
  if (s.candidates == 0) return std::nullopt;
  if (s.compiled < s.candidates) {
    if (s.compiled == 0) return std::nullopt;
    return s.compile_s / static_cast<double>(s.compiled) * static_cast<double>(s.candidates - s.compiled);
  }
  if (s.timed >= s.candidates) return 0.0;
  if (s.timed == 0) return std::nullopt;
  return s.timing_s / static_cast<double>(s.timed) * static_cast<double>(s.candidates - s.timed);
}

std::string format_eta(std::optional<double> seconds) {
  if (!seconds || !std::isfinite(*seconds) || *seconds < 0) return "?";
  const long long t = std::llround(*seconds);
  if (t < 60) return fmt::format("{} s", t);
  if (t < 3600) return fmt::format("{} min {:02} s", t / 60, t % 60);
  return fmt::format("{} h {:02} min", t / 3600, (t % 3600) / 60);
}

std::string format_progress(const TuneProgressState& s) {
  return fmt::format("[spec {}/{}, shape {}/{}] compiling {}/{} candidates, timing {}/{}, ETA {}", s.spec, s.specs,
                     s.shape, s.shapes, s.compiled, s.candidates, s.timed, s.candidates, format_eta(eta_seconds(s)));
}

ProgressLine::ProgressLine(std::FILE* out, bool tty, std::string restore)
    : out_(out), tty_(tty), restore_(std::move(restore)) {}

ProgressLine::~ProgressLine() { finish(); }

void ProgressLine::draw(const std::string& text) {
  if (!tty_) return;
  const std::size_t width = terminal_width(fileno(out_));
  const std::string shown = text.size() + 1 > width ? text.substr(0, width > 1 ? width - 1 : 0) : text;
  fmt::print(out_, "\r\033[K{}", shown);  // \033[K: erase the rest of the line
  std::fflush(out_);
  drawn_ = true;
}

void ProgressLine::finish() {
  if (!tty_ || !drawn_) return;
  fmt::print(out_, "\r\033[K{}", restore_);
  std::fflush(out_);
  drawn_ = false;
}

bool is_terminal(int fd) { return ::isatty(fd) == 1; }

std::size_t terminal_width(int fd) {
  winsize w{};
  if (::ioctl(fd, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) return w.ws_col;
  return 80;
}

}  // namespace flashjit::cli
