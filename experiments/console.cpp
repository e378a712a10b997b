#include "experiments/console.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>

namespace gs::experiments {

namespace {
std::atomic<int> stop_signal{0};
extern "C" void on_stop_signal(int sig) { stop_signal.store(sig); }
}  // namespace

int stop_requested() { return stop_signal.load(); }

StopSignals::StopSignals() {
  stop_signal.store(0);
  previous_int_ = std::signal(SIGINT, on_stop_signal);
  previous_term_ = std::signal(SIGTERM, on_stop_signal);
}

StopSignals::~StopSignals() {
  std::signal(SIGINT, previous_int_);
  std::signal(SIGTERM, previous_term_);
}

std::string duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<std::int64_t>(seconds);
  return s >= 3600 ? fmt::format("{}h{:02}m", s / 3600, s / 60 % 60) : fmt::format("{}m{:02}s", s / 60, s % 60);
}

Progress::Progress(bool quiet) : quiet_(quiet), tty_(isatty(fileno(stdout)) != 0) {}

void Progress::report(std::int64_t step, std::int64_t total, double elapsed, const Evaluation& train, const Evaluation& test,
                      bool force) {
  if (quiet_) return;
  const double gap = tty_ ? 0.2 : 10.0;
  if (!force && elapsed - last_ < gap) return;
  last_ = elapsed;
  const double rate = step / std::max(elapsed, 1e-9);
  const std::string eta = step == 0 ? "?" : duration((total - step) / std::max(rate, 1e-9));
  const std::string line =
      fmt::format("step {:>7}/{}  {:6.0f} steps/s  ETA {}  train loss {:.4g} acc {:.4f}  test loss {:.4g} acc {:.4f}", step,
                  total, rate, eta, train.loss, train.accuracy, test.loss, test.accuracy);
  if (tty_)
    fmt::print("\r{}\033[K", line);
  else
    fmt::print("{}\n", line);
  std::fflush(stdout);
}

void Progress::finish() {
  if (!quiet_ && tty_) fmt::print("\n");
}

}  // namespace gs::experiments
