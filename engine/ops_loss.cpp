// Softmax, the losses of the study's recipes, and classification metrics.
#include <cmath>

#include "engine/ops_common.h"

namespace gs::ops {

using namespace detail;

namespace {

void check_logits(const char* op, const Tensor& x) {
  check_float(op, x, "input");
  GS_CHECK(x.rank() == 2, "{}: the input must be 2-D [rows, classes], got {}", op, x.describe());
}

// Labels must be i32 [rows] with every value in [0, classes). Values are checked where they live
// on the host; labels on a GPU are not read back (a training step there makes no round trip to
// the host), and an out-of-range one makes the loss NaN instead, which the runner reports.
void check_labels(const char* op, const Tensor& logits, const Tensor& labels) {
  check_defined(op, labels, "labels");
  GS_CHECK(labels.dtype() == DType::i32 && labels.rank() == 1 && labels.size(0) == logits.size(0),
           "{}: labels must be i32[{}] to match the logits {}, got {}", op, logits.size(0), logits.describe(),
           labels.describe());
  GS_CHECK(labels.device() == logits.device(), "{}: labels {} and logits {} are on different devices", op,
           labels.describe(), logits.describe());
  if (labels.device() != Device::cpu) return;
  const auto values = labels.to_int_vector();
  for (std::size_t i = 0; i < values.size(); ++i)
    GS_CHECK(values[i] >= 0 && values[i] < logits.size(1),
             "{}: label {} at row {} is out of range for {} classes (labels must be in [0, {}))", op, values[i],
             i, logits.size(1), logits.size(1));
}

// A loss's value and, when the tape is to record it, backward()'s seed beside it: two elements of
// one allocation, both written by the loss's launch (kernels/loss.h), so that backward() launches
// no fill.
struct LossOutput {
  Tensor loss, one;
  void* one_raw() { return one.defined() ? one.raw() : nullptr; }
  Tensor with_seed(Tensor recorded) const {  // record()'s result, its node given the seed
    if (one.defined() && recorded.grad_fn()) recorded.grad_fn()->seed = one;
    return recorded;
  }
};

LossOutput loss_output(const Tensor& like, std::initializer_list<const Tensor*> inputs) {
  bool taped = false;
  for (const Tensor* t : inputs) taped = taped || (t->defined() && t->requires_grad());
  if (!grad_enabled() || !taped) return {Tensor::empty(Shape{}, like.dtype(), like.device()), Tensor()};
  Tensor both = Tensor::empty(Shape{2}, like.dtype(), like.device());
  return {both.rows(0, 1).view(Shape{}), both.rows(1, 2).view(Shape{})};
}

}  // namespace

Tensor log_softmax(const Tensor& x) {
  check_logits("log_softmax", x);
  Tensor y = empty_like(x);
  backend_of(x).log_softmax(x.dtype(), x.size(0), x.size(1), x.raw(), y.raw());
  Tensor saved = y.detach();
  return record(y, "log_softmax", {x}, [saved](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = empty_like(g);
    backend_of(g).log_softmax_backward(g.dtype(), g.size(0), g.size(1), saved.raw(), g.raw(), gx.raw());
    return std::vector<Tensor>{gx};
  });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  check_logits("cross_entropy", logits);
  GS_CHECK(logits.size(0) > 0 && logits.size(1) > 0, "cross_entropy: needs at least one row and one class, got {}",
           logits.describe());
  check_labels("cross_entropy", logits, labels);
  LossOutput out = loss_output(logits, {&logits});
  // Taped, the launch also keeps the log-probabilities (for a cotangent other than the seed) and
  // writes the gradient for the seed; evaluated, it writes the loss alone.
  const bool taped = out.one.defined();
  Tensor logp = taped ? empty_like(logits) : Tensor(), grad = taped ? empty_like(logits) : Tensor();
  const auto* label_values = static_cast<const std::int32_t*>(labels.raw());
  backend_of(logits).cross_entropy(logits.dtype(), logits.size(0), logits.size(1), logits.raw(), label_values,
                                   taped ? logp.raw() : nullptr, out.loss.raw(), out.one_raw(),
                                   taped ? grad.raw() : nullptr);
  return out.with_seed(record(out.loss, "cross_entropy", {logits},
                              [labels, logp, grad, seed = out.one](const Tensor& g, const std::vector<bool>&) {
    if (g.raw() == seed.raw()) return std::vector<Tensor>{grad};  // backward() from this loss: computed already
    const std::int64_t rows = logp.size(0), cols = logp.size(1);
    Tensor glogp = empty_like(logp), gx = empty_like(logp);
    auto& be = backend_of(g);
    be.nll_backward(g.dtype(), rows, cols, static_cast<const std::int32_t*>(labels.raw()), g.raw(), glogp.raw());
    be.log_softmax_backward(g.dtype(), rows, cols, logp.raw(), glogp.raw(), gx.raw());
    return std::vector<Tensor>{gx};
  }));
}

Tensor mse_loss(const Tensor& prediction, const Tensor& target) {
  check_pair("mse_loss", prediction, target);
  GS_CHECK(prediction.shape() == target.shape(), "mse_loss: the prediction {} and the target {} differ in shape",
           prediction.describe(), target.describe());
  GS_CHECK(prediction.numel() > 0, "mse_loss: the prediction {} is empty", prediction.describe());
  LossOutput out = loss_output(prediction, {&prediction, &target});
  backend_of(prediction).mse(prediction.dtype(), prediction.numel(), prediction.raw(), target.raw(), out.loss.raw(),
                             out.one_raw());
  return out.with_seed(record(out.loss, "mse_loss", {prediction, target},
                [prediction, target](const Tensor& g, const std::vector<bool>& needs) {
                  std::vector<Tensor> grads(2);
                  Tensor ga = empty_like(prediction);
                  backend_of(g).mse_backward(g.dtype(), ga.numel(), prediction.raw(), target.raw(), g.raw(), ga.raw());
                  if (needs[1]) grads[1] = scale(ga, -1.0);
                  if (needs[0]) grads[0] = ga;
                  return grads;
                }));
}

Tensor mse_one_hot_loss(const Tensor& prediction, const Tensor& labels) {
  check_logits("mse_one_hot_loss", prediction);
  GS_CHECK(prediction.numel() > 0, "mse_one_hot_loss: the prediction {} is empty", prediction.describe());
  check_labels("mse_one_hot_loss", prediction, labels);
  LossOutput out = loss_output(prediction, {&prediction});
  // Taped, the launch also writes the gradient for backward()'s seed.
  Tensor grad = out.one.defined() ? empty_like(prediction) : Tensor();
  const auto* label_values = static_cast<const std::int32_t*>(labels.raw());
  backend_of(prediction).mse_one_hot(prediction.dtype(), prediction.size(0), prediction.size(1), prediction.raw(),
                                     label_values, out.loss.raw(), out.one_raw(), grad.defined() ? grad.raw() : nullptr);
  return out.with_seed(record(out.loss, "mse_one_hot_loss", {prediction},
                              [prediction, labels, grad, seed = out.one](const Tensor& g, const std::vector<bool>&) {
    if (g.raw() == seed.raw()) return std::vector<Tensor>{grad};  // backward() from this loss: computed already
    Tensor gx = empty_like(prediction);
    backend_of(g).mse_one_hot_backward(g.dtype(), prediction.size(0), prediction.size(1), prediction.raw(),
                                       static_cast<const std::int32_t*>(labels.raw()), g.raw(), gx.raw());
    return std::vector<Tensor>{gx};
  }));
}

Tensor argmax(const Tensor& x) {
  check_logits("argmax", x);
  Tensor out = Tensor::empty(Shape{x.size(0)}, DType::i32, x.device());
  if (x.size(1) == 0) {
    GS_CHECK(x.size(0) == 0, "argmax: rows of {} have no columns to choose from", x.describe());
    return out;
  }
  backend_of(x).argmax_rows(x.dtype(), x.size(0), x.size(1), x.raw(), static_cast<std::int32_t*>(out.raw()));
  return out;
}

double accuracy(const Tensor& logits, const Tensor& labels) {
  check_logits("accuracy", logits);
  check_labels("accuracy", logits, labels);
  GS_CHECK(logits.size(0) > 0, "accuracy: no rows in {}", logits.describe());
  Tensor predicted = argmax(logits);
  auto correct = backend_of(logits).count_equal(logits.size(0), static_cast<const std::int32_t*>(predicted.raw()),
                                                static_cast<const std::int32_t*>(labels.raw()));
  return static_cast<double>(correct) / static_cast<double>(logits.size(0));
}

Tensor one_hot(const Tensor& labels, std::int64_t classes, DType dtype) {
  check_defined("one_hot", labels, "labels");
  GS_CHECK(labels.dtype() == DType::i32 && labels.rank() == 1, "one_hot: labels must be i32[n], got {}",
           labels.describe());
  GS_CHECK(classes > 0, "one_hot: the number of classes must be positive, got {}", classes);
  GS_CHECK(dtype == DType::f32 || dtype == DType::f64, "one_hot: the targets must be f32 or f64, got {}", dtype_name(dtype));
  if (labels.device() == Device::cpu) {  // as check_labels: only host labels are read to be checked
    const auto values = labels.to_int_vector();
    for (std::size_t i = 0; i < values.size(); ++i)
      GS_CHECK(values[i] >= 0 && values[i] < classes,
               "one_hot: label {} at row {} is out of range for {} classes (labels must be in [0, {}))", values[i], i,
               classes, classes);
  }
  Tensor y = Tensor::empty(Shape{labels.size(0), classes}, dtype, labels.device());
  backend_of(labels).one_hot(dtype, labels.size(0), classes, static_cast<const std::int32_t*>(labels.raw()), y.raw());
  return y;
}

}  // namespace gs::ops
