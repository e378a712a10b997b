#include "experiments/probes.h"

#include <memory>

#include "experiments/geometry_probe.h"
#include "experiments/ntk_probe.h"

namespace gs::experiments {

std::vector<std::pair<std::string, ProbeHook>> recipe_probes(const Recipe& recipe) {
  std::vector<std::pair<std::string, ProbeHook>> hooks;
  const auto& p = recipe.probe;
  if (p.ntk) {
    auto probe = std::make_shared<NtkProbe>(p.save_kernels);
    hooks.emplace_back("ntk", [probe](const ProbeContext& c) { (*probe)(c); });
  }
  if (p.geometry) {
    const probe::CenterRemoval removal{p.geometry_center_structure, p.geometry_center_k};
    auto probe = std::make_shared<GeometryProbe>(p.kappa, p.geometry_n_t, recipe.train.seed, removal);
    hooks.emplace_back("geometry", [probe](const ProbeContext& c) { (*probe)(c); });
  }
  return hooks;
}

}  // namespace gs::experiments
