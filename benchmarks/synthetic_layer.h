#pragma once
// A synthetic layer for the geometry benchmarks: `classes` Gaussian clouds (spread 0.5) of
// `per_class` points around standard normal centers in `features` dimensions, the same for a
// given shape in every binary.
#include <cstdint>
#include <vector>

#include "engine/rng.h"
#include "engine/tensor.h"

namespace gs::bench {

struct SyntheticLayer {
  std::vector<double> x;        // row-major [classes · per_class, features]
  std::vector<std::int32_t> y;  // the class of each row
};

inline SyntheticLayer gaussian_clouds(std::int64_t classes, std::int64_t per_class, std::int64_t features) {
  Generator g(1, Stream::data);
  Tensor centers = Tensor::empty(Shape{classes * features}, DType::f64);
  Tensor noise = Tensor::empty(Shape{classes * per_class * features}, DType::f64);
  g.normal(centers, 0, 1);
  g.normal(noise, 0, 0.5);
  const auto c = centers.to_vector(), e = noise.to_vector();
  SyntheticLayer l;
  for (std::int64_t k = 0; k < classes; ++k)
    for (std::int64_t p = 0; p < per_class; ++p) {
      for (std::int64_t f = 0; f < features; ++f) l.x.push_back(c[k * features + f] + e[(k * per_class + p) * features + f]);
      l.y.push_back(static_cast<std::int32_t>(k));
    }
  return l;
}

}  // namespace gs::bench
