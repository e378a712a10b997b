#pragma once
// What a long run shows and hears on the console: a progress line, and stop signals.
#include <string>

#include "experiments/runner.h"

namespace gs::experiments {

// On a terminal: one live line, rewritten at most 5 times a second. In a log: a line every 10 s.
class Progress {
 public:
  explicit Progress(bool quiet);
  void report(std::int64_t step, std::int64_t total, double elapsed_seconds, const Evaluation& train,
              const Evaluation& test, bool force);
  void finish();  // ends the live line

 private:
  bool quiet_, tty_;
  double last_ = -1e9;
};

// While one exists, SIGINT and SIGTERM only set a flag that the training loop reads after each
// step (so the step finishes and a checkpoint is written); the previous handlers come back after.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  void (*previous_int_)(int) = nullptr;
  void (*previous_term_)(int) = nullptr;
};
int stop_requested();  // the signal number received, or 0

std::string duration(double seconds);  // "3m07s", "1h02m"

}  // namespace gs::experiments
