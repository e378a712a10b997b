#include "experiments/onsets.h"

#include <cmath>

#include "engine/error.h"

namespace gs::experiments {

namespace {
// The step at fraction f of the way from s0 to s1: in log-step, or in step when s0 is 0.
double step_between(double s0, double s1, double f) {
  if (s0 <= 0) return s0 + f * (s1 - s0);
  return std::pow(10.0, std::log10(s0) + f * (std::log10(s1) - std::log10(s0)));
}
// Where step t sits between s0 and s1, as a fraction, in the same coordinates as step_between.
double fraction_of(double s0, double s1, double t) {
  if (s1 == s0) return 0;
  if (s0 <= 0) return (t - s0) / (s1 - s0);
  return (std::log10(t) - std::log10(s0)) / (std::log10(s1) - std::log10(s0));
}
}  // namespace

double value_at(const Series& s, double t) {
  GS_CHECK(!s.empty(), "value_at: empty series");
  if (t <= s.step.front()) return s.value.front();
  if (t >= s.step.back()) return s.value.back();
  std::size_t i = 1;
  while (s.step[i] < t) ++i;
  const double f = fraction_of(s.step[i - 1], s.step[i], t);
  return s.value[i - 1] + f * (s.value[i] - s.value[i - 1]);
}

std::optional<double> first_crossing(const Series& s, double threshold, bool upwards, double from) {
  if (s.empty() || from > s.step.back()) return std::nullopt;
  const auto past = [&](double v) { return upwards ? v >= threshold : v <= threshold; };
  // The curve from `from` on: its interpolated value there, then every later logged point.
  double s0 = std::max(from, s.step.front());
  double v0 = value_at(s, s0);
  if (past(v0)) return s0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s.step[i] <= s0) continue;
    const double v1 = s.value[i];
    if (past(v1)) return step_between(s0, s.step[i], (threshold - v0) / (v1 - v0));
    s0 = s.step[i];
    v0 = v1;
  }
  return std::nullopt;
}

Rise rise_after(const Series& s, double from, double min_change) {
  Rise r;
  if (s.empty()) return r;
  r.start_value = value_at(s, from);
  r.final_value = s.value.back();
  const double change = r.final_value - r.start_value;
  r.upwards = change >= 0;
  r.moved = std::abs(change) >= min_change && std::abs(change) > 0;
  if (!r.moved) return r;
  const auto at = [&](double q) { return first_crossing(s, r.start_value + q * change, r.upwards, from); };
  r.t10 = at(0.1);
  r.t50 = at(0.5);
  r.t90 = at(0.9);
  return r;
}

double decades_between(double earlier, double later) {
  // Step 0 has no logarithm; an event there is taken as step 1, the first step a run logs.
  return std::log10(std::max(later, 1.0)) - std::log10(std::max(earlier, 1.0));
}

}  // namespace gs::experiments
