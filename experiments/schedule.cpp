#include "experiments/schedule.h"

#include <algorithm>
#include <cmath>

namespace gs::experiments {

namespace {
void geometric(std::vector<std::int64_t>& out, std::int64_t from, std::int64_t to, std::int64_t points) {
  if (from > to || points < 1) return;
  if (points == 1 || from == to) {
    out.push_back(to);
    return;
  }
  const double ratio = std::log(static_cast<double>(to) / static_cast<double>(from));
  for (std::int64_t i = 0; i < points; ++i)
    out.push_back(static_cast<std::int64_t>(std::llround(
        static_cast<double>(from) * std::exp(ratio * static_cast<double>(i) / static_cast<double>(points - 1)))));
}

std::vector<std::int64_t> tidy(std::vector<std::int64_t> v, std::int64_t total) {
  v.push_back(total);
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  v.erase(std::remove_if(v.begin(), v.end(), [total](std::int64_t s) { return s < 0 || s > total; }), v.end());
  return v;
}
}  // namespace

std::vector<std::int64_t> study_metric_steps(std::int64_t total, std::int64_t tail_points) {
  std::vector<std::int64_t> v;
  for (std::int64_t s = 0; s < std::min<std::int64_t>(30, total + 1); ++s) v.push_back(s);
  for (std::int64_t s = 30; s < std::min<std::int64_t>(150, total + 1); s += 10) v.push_back(s);
  geometric(v, 150, total, tail_points);
  return tidy(v, total);
}

std::vector<std::int64_t> every_steps(std::int64_t total, std::int64_t every) {
  std::vector<std::int64_t> v;
  for (std::int64_t s = 0; s <= total; s += every) v.push_back(s);
  return tidy(v, total);
}

std::vector<std::int64_t> log_spaced_steps(std::int64_t total, std::int64_t points) {
  std::vector<std::int64_t> v{0};
  geometric(v, 1, total, points);
  return tidy(v, total);
}

}  // namespace gs::experiments
