#pragma once
// When to log metrics and when to probe: sorted, unique step numbers in [0, total]. Step 0 is the
// initial weights (before any update); step s is after s updates.
#include <cstdint>
#include <vector>

namespace gs::experiments {

// The study's metric schedule: every step below 30, every 10th below 150, then `tail_points`
// log-spaced steps from 150 to `total` (which is always included).
std::vector<std::int64_t> study_metric_steps(std::int64_t total, std::int64_t tail_points);
// 0, every, 2·every, ..., and total.
std::vector<std::int64_t> every_steps(std::int64_t total, std::int64_t every);
// 0 and about `points` log-spaced steps from 1 to total (total included); duplicates after
// rounding are dropped, so short runs get fewer.
std::vector<std::int64_t> log_spaced_steps(std::int64_t total, std::int64_t points);

}  // namespace gs::experiments
