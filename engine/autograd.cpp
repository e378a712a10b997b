#include "engine/autograd.h"

#include <unordered_map>

#include "engine/ops.h"

namespace gs {

namespace {
thread_local bool grad_mode = true;
}

bool grad_enabled() { return grad_mode; }
NoGrad::NoGrad() : previous_(grad_mode) { grad_mode = false; }
NoGrad::~NoGrad() { grad_mode = previous_; }

Tensor record(Tensor out, const char* op, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!grad_mode) return out;
  bool any = false;
  for (const auto& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return out;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.set_grad_fn(std::move(node));
  return out;
}

namespace {

Tensor accumulate(const Tensor& existing, const Tensor& incoming) {
  // Out of place: a gradient may alias another (add passes its cotangent to both inputs).
  return existing.defined() ? ops::add(existing, incoming) : incoming;
}

void check_gradient(const Node& node, std::size_t i, const Tensor& input, const Tensor& g) {
  GS_CHECK(g.shape() == input.shape() && g.dtype() == input.dtype(),
           "internal error: the backward of {} produced a {} gradient for its input {} of {}",
           node.op, g.describe(), i, input.describe());
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& cotangent, bool retain_graph) {
  NoGrad no_tape;  // the backward closures compute plain tensors, never a graph of their own
  GS_CHECK(root.requires_grad(),
           "backward() on a tensor that does not require grad ({}): no input of the computation "
           "had requires_grad set, or it ran inside a NoGrad scope",
           root.describe());
  Tensor seed = cotangent;
  if (!seed.defined()) {
    GS_CHECK(root.numel() == 1,
             "backward() without a cotangent needs a one-element output, got {}; pass a cotangent "
             "of the output's shape",
             root.describe());
    const auto node = root.grad_fn();
    seed = node && node->seed.defined() ? node->seed : Tensor::full(root.shape(), 1.0, root.dtype(), root.device());
  }
  GS_CHECK(seed.shape() == root.shape() && seed.dtype() == root.dtype() && seed.device() == root.device(),
           "backward(): the cotangent is {} but the output is {}; they must match", seed.describe(),
           root.describe());

  auto root_node = root.grad_fn();
  if (!root_node) {  // backward from a leaf: its gradient is the cotangent
    root.accumulate_grad(seed);
    return;
  }

  // Depth-first post-order without recursion (deep graphs must not overflow the stack).
  // `order` owns the nodes: releasing one drops its inputs, which may hold the last reference to
  // a node still to be visited.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_map<Node*, int> state;  // 1 = visiting, 2 = done
  std::vector<std::pair<std::shared_ptr<Node>, std::size_t>> stack{{root_node, 0}};
  state[root_node.get()] = 1;
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    GS_CHECK(!node->released,
             "backward() through {} a second time: the graph was freed by the first backward; "
             "pass retain_graph = true to the first call",
             node->op);
    if (next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      auto child = in.defined() ? in.grad_fn() : nullptr;
      if (child && !state.count(child.get())) {
        state[child.get()] = 1;
        stack.emplace_back(std::move(child), 0);
      }
    } else {
      state[node.get()] = 2;
      order.push_back(std::move(node));
      stack.pop_back();
    }
  }

  std::unordered_map<Node*, Tensor> pending{{root_node.get(), seed}};
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = it->get();
    auto found = pending.find(node);
    if (found == pending.end()) continue;  // no gradient reached this node
    Tensor g = std::move(found->second);
    pending.erase(found);
    std::vector<bool> needs(node->inputs.size());
    for (std::size_t i = 0; i < needs.size(); ++i)
      needs[i] = node->inputs[i].defined() && node->inputs[i].requires_grad();
    std::vector<Tensor> grads = node->backward(g, needs);
    for (std::size_t i = 0; i < node->inputs.size() && i < grads.size(); ++i) {
      if (!needs[i] || !grads[i].defined()) continue;
      const Tensor& in = node->inputs[i];
      check_gradient(*node, i, in, grads[i]);
      if (auto child = in.grad_fn()) {
        Tensor& slot = pending[child.get()];
        slot = accumulate(slot, grads[i]);
      } else {
        in.accumulate_grad(grads[i]);
      }
    }
    if (!retain_graph) {
      node->backward = nullptr;  // frees what the closure saved
      node->inputs.clear();
      node->released = true;
    }
  }
}

}  // namespace gs
