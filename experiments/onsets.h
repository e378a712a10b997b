#pragma once
// When a logged curve rises: threshold crossings between probe steps, interpolated linearly in
// log10(step) (the probe steps are log-spaced, so that is where a curve is smooth), and the
// study's 10 / 50 / 90% rule. Interpolation from step 0 is linear in step, since log 0 is -inf.
#include <optional>
#include <vector>

namespace gs::experiments {

// One quantity at ascending logged steps; rows with a non-finite value are left out by whoever
// builds it.
struct Series {
  std::vector<double> step;
  std::vector<double> value;
  bool empty() const { return step.empty(); }
  std::size_t size() const { return step.size(); }
};

// The value at step t, interpolated between the logged steps around it; clamped to the first and
// last logged values outside them.
double value_at(const Series& s, double t);

// The first step at or after `from` where the curve reaches `threshold`, from below when
// `upwards`, from above otherwise. nullopt when it never does. A curve that is already past the
// threshold at `from` crosses at `from`.
std::optional<double> first_crossing(const Series& s, double threshold, bool upwards, double from = 0);

// How a curve moves from its value at step `from` to its final (last logged) value: t10, t50 and
// t90 are the first steps at which it has covered 10, 50 and 90% of that way. A change smaller
// than `min_change` (either sign) counts as no movement, and leaves every t empty.
struct Rise {
  double start_value = 0;
  double final_value = 0;
  bool moved = false;
  bool upwards = true;
  std::optional<double> t10, t50, t90;
};
Rise rise_after(const Series& s, double from, double min_change);

// log10(later / earlier): how many decades of steps separate two events; positive when `later`
// really is later.
double decades_between(double earlier, double later);

}  // namespace gs::experiments
