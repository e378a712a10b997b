// Layers, parameter names and PyTorch's default initialization.
#include "engine/init.h"
#include "helpers.h"
#include "models/models.h"

using namespace gs;

TEST_SUITE("nn") {
  TEST_CASE("MLP parameters are named as the PyTorch state_dict of nn.Sequential under `layers`") {
    Generator gen(1);
    auto net = models::make_mlp({.widths = {784, 200, 200, 10}}, gen);
    std::vector<std::string> names;
    for (auto& [name, t] : net->named_parameters("layers.")) names.push_back(name);
    CHECK(names == std::vector<std::string>{"layers.1.weight", "layers.1.bias", "layers.3.weight", "layers.3.bias",
                                            "layers.5.weight", "layers.5.bias"});
    CHECK(net->parameter_count() == 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10);
    CHECK(net->named_parameters()[0].second.shape() == Shape{200, 784});  // [out, in], as torch
    CHECK(models::output_layer_prefix(*net) == "5");
  }

  TEST_CASE("Sequential runs a Linear and its activation as one op, with the values of the two modules") {
    for (auto act : {nn::Activation::relu, nn::Activation::tanh, nn::Activation::sigmoid, nn::Activation::gelu}) {
      CAPTURE(nn::activation_name(act));
      Generator gen(4);
      auto net = models::make_mlp({.widths = {12, 9, 7, 4}, .activation = act}, gen);
      Tensor x = test::random_tensor(Shape{6, 12}, 5, DType::f32);
      // Module by module, as the probes call them, against Sequential::forward.
      Tensor h = x;
      for (std::size_t i = 0; i < net->size(); ++i) h = (*net)[i].forward(h);
      ops::sum(ops::mul(h, h)).backward();
      std::vector<std::vector<double>> apart;
      for (auto& p : net->parameters()) {
        apart.push_back(p.grad().to_vector());
        p.zero_grad();
      }
      Tensor y = net->forward(x);
      CHECK(y.to_vector() == h.to_vector());
      ops::sum(ops::mul(y, y)).backward();
      std::size_t k = 0;
      for (auto& p : net->parameters()) CHECK(p.grad().to_vector() == apart[k++]);
    }
  }

  TEST_CASE("the study's CNN: shapes and names") {
    Generator gen(2);
    auto net = models::make_cnn({}, gen);
    Tensor y = net->forward(test::random_tensor(Shape{2, 1, 28, 28}, 3, DType::f32));
    CHECK(y.shape() == Shape{2, 10});
    auto params = net->named_parameters();
    REQUIRE(params.size() == 8);
    CHECK(params[0].first == "0.weight");
    CHECK(params[0].second.shape() == Shape{32, 1, 3, 3});
    CHECK(params[2].second.shape() == Shape{64, 32, 3, 3});
    CHECK(params[4].first == "7.weight");
    CHECK(params[4].second.shape() == Shape{128, 3136});
    CHECK(params[6].second.shape() == Shape{10, 128});
  }

  TEST_CASE("default init is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases") {
    Generator gen(3);
    nn::Linear big(400, 500, gen);
    const double bound = 1.0 / 20.0;
    auto w = big.weight().to_vector();
    double mean = 0, var = 0, hi = 0;
    for (double v : w) {
      mean += v / static_cast<double>(w.size());
      hi = std::max(hi, std::abs(v));
    }
    for (double v : w) var += (v - mean) * (v - mean) / static_cast<double>(w.size());
    CHECK(hi <= bound);
    CHECK(hi > 0.999 * bound);
    CHECK(std::abs(mean) < 4 * bound / std::sqrt(3.0 * static_cast<double>(w.size())));
    CHECK(var == doctest::Approx(bound * bound / 3).epsilon(0.01));  // U(-b, b) has variance b²/3
    auto b = big.bias().to_vector();
    for (double v : b) CHECK(std::abs(v) <= bound);
    Generator gen2(4);
    nn::Conv2d conv(8, 16, 3, gen2);  // fan_in = 8·3·3 = 72
    double conv_hi = 0;
    for (double v : conv.weight().to_vector()) conv_hi = std::max(conv_hi, std::abs(v));
    CHECK(conv_hi <= 1.0 / std::sqrt(72.0));
    CHECK(conv_hi > 0.99 / std::sqrt(72.0));
  }

  TEST_CASE("init_scale multiplies every parameter; output_scale multiplies the logits") {
    Generator g1(5), g2(5), g3(5);
    auto base = models::make_mlp({.widths = {6, 5, 3}}, g1);
    auto scaled = models::make_mlp({.widths = {6, 5, 3}, .init_scale = 8.0}, g2);
    auto out_scaled = models::make_mlp({.widths = {6, 5, 3}, .output_scale = 0.5}, g3);
    auto pb = base->parameters(), ps = scaled->parameters();
    for (std::size_t i = 0; i < pb.size(); ++i) {
      auto vb = pb[i].to_vector(), vs = ps[i].to_vector();
      for (std::size_t j = 0; j < vb.size(); ++j) CHECK(vs[j] == doctest::Approx(8.0 * vb[j]));
    }
    Tensor x = test::random_tensor(Shape{4, 6}, 6, DType::f32);
    auto y = base->forward(x).to_vector(), yo = out_scaled->forward(x).to_vector();
    for (std::size_t j = 0; j < y.size(); ++j) CHECK(yo[j] == doctest::Approx(0.5 * y[j]));
  }

  TEST_CASE("a seed fixes the initial weights") {
    Generator a(9), b(9), c(10);
    auto na = models::make_mlp({.widths = {5, 4, 2}}, a), nb = models::make_mlp({.widths = {5, 4, 2}}, b),
         nc = models::make_mlp({.widths = {5, 4, 2}}, c);
    CHECK(na->parameters()[0].to_vector() == nb->parameters()[0].to_vector());
    CHECK(na->parameters()[0].to_vector() != nc->parameters()[0].to_vector());
  }

  TEST_CASE("modules convert their parameters between dtypes") {
    Generator gen(11);
    auto net = models::make_mlp({.widths = {3, 2}}, gen);
    auto before = net->parameters()[0].to_vector();
    net->to(DType::f64);
    CHECK(net->parameters()[0].dtype() == DType::f64);
    CHECK(net->parameters()[0].requires_grad());
    CHECK(net->parameters()[0].to_vector() == before);
  }
}
