#pragma once
// The tape. Every op that sees an input requiring grad records a Node: its inputs (the edges of
// the graph) and a closure that maps the output's gradient to the inputs' gradients. backward()
// walks the nodes in reverse topological order, accumulates gradients into the leaves, and frees
// the closures (and what they saved) unless asked to retain the graph.
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace gs {

// grads[i] for inputs[i]; an undefined tensor where needs[i] is false or the gradient is zero.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out, const std::vector<bool>& needs)>;

struct Node {
  std::string op;
  std::vector<Tensor> inputs;
  BackwardFn backward;
  bool released = false;
  // A loss's node: a one-element tensor holding 1, written by the loss's own kernel, which
  // backward() without a cotangent takes as its seed instead of filling one (a launch less).
  Tensor seed;
};

bool grad_enabled();

// Within its scope no op records onto the tape (evaluation, optimizer updates, probes).
class NoGrad {
 public:
  NoGrad();
  ~NoGrad();
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool previous_;
};

// Attaches `out` to the tape when grad mode is on and an input requires grad; returns out.
Tensor record(Tensor out, const char* op, std::vector<Tensor> inputs, BackwardFn backward);

void run_backward(const Tensor& root, const Tensor& cotangent, bool retain_graph);

}  // namespace gs
