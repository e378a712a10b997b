#pragma once
// Σ f(i) over [begin, end) in f64 with eight running sums (element i goes to sum (i − begin) mod 8),
// added in a fixed order at the end. One chain of dependent additions would bound the loop at one
// element per add latency; the result still depends on the range alone, never on threads.
#include <cstdint>

namespace gs::kernels::cpu {

template <class F>
double lane_sum(std::int64_t begin, std::int64_t end, F&& f) {
  constexpr std::int64_t lanes = 8;
  double s[lanes] = {};
  std::int64_t i = begin;
  for (; i + lanes <= end; i += lanes)
    for (std::int64_t l = 0; l < lanes; ++l) s[l] += f(i + l);
  for (; i < end; ++i) s[(i - begin) & (lanes - 1)] += f(i);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

}  // namespace gs::kernels::cpu
