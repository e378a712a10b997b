#include "models/models.h"

#include "engine/init.h"

namespace gs::models {

namespace {
std::shared_ptr<nn::Sequential> finish(std::shared_ptr<nn::Sequential> net, double init_scale, double output_scale) {
  net->add(std::make_shared<nn::Scale>(output_scale));
  init::scale_parameters(*net, init_scale);
  return net;
}
}  // namespace

std::shared_ptr<nn::Sequential> make_mlp(const MlpConfig& c, Generator& gen) {
  GS_CHECK(c.widths.size() >= 2, "an MLP needs at least an input and an output width, got {} widths", c.widths.size());
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Flatten>());
  for (std::size_t i = 0; i + 1 < c.widths.size(); ++i) {
    net->add(std::make_shared<nn::Linear>(c.widths[i], c.widths[i + 1], gen, true, c.dtype));
    if (i + 2 < c.widths.size()) net->add(std::make_shared<nn::ActivationLayer>(c.activation));
  }
  return finish(net, c.init_scale, c.output_scale);
}

std::shared_ptr<nn::Sequential> make_cnn(const CnnConfig& c, Generator& gen) {
  GS_CHECK(c.image_size % 4 == 0 && c.image_size > 0, "the CNN needs an image size divisible by 4, got {}",
           c.image_size);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Conv2d>(c.in_channels, 32, 3, gen, 1, 1, true, c.dtype));
  net->add(std::make_shared<nn::ActivationLayer>(nn::Activation::relu));
  net->add(std::make_shared<nn::MaxPool2d>(2));
  net->add(std::make_shared<nn::Conv2d>(32, 64, 3, gen, 1, 1, true, c.dtype));
  net->add(std::make_shared<nn::ActivationLayer>(nn::Activation::relu));
  net->add(std::make_shared<nn::MaxPool2d>(2));
  net->add(std::make_shared<nn::Flatten>());
  const std::int64_t side = c.image_size / 4;
  net->add(std::make_shared<nn::Linear>(64 * side * side, 128, gen, true, c.dtype));
  net->add(std::make_shared<nn::ActivationLayer>(nn::Activation::relu));
  net->add(std::make_shared<nn::Linear>(128, c.classes, gen, true, c.dtype));
  return finish(net, c.init_scale, c.output_scale);
}

std::string output_layer_prefix(const nn::Sequential& net) {
  auto params = net.named_parameters();
  GS_CHECK(!params.empty(), "the network has no parameters");
  const std::string& last = params.back().first;  // "<i>.bias" or "<i>.weight"
  return last.substr(0, last.find('.'));
}

}  // namespace gs::models
