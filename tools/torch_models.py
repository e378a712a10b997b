"""The study's networks in PyTorch, laid out as grokscope lays them out: an nn.Sequential held as
`self.layers`, so that state_dict keys ("layers.1.weight") match grokscope's checkpoints."""
import torch


class Net(torch.nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = torch.nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def mlp(widths):
    """Flatten, then Linear → ReLU → ... → Linear (models/models.h, make_mlp)."""
    layers = [torch.nn.Flatten()]
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i + 2 < len(widths):
            layers.append(torch.nn.ReLU())
    return Net(layers)


def cnn(classes, channels=1, size=28):
    """The study's CNN (models/models.h, make_cnn)."""
    side = size // 4
    return Net([torch.nn.Conv2d(channels, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                torch.nn.Linear(64 * side * side, 128), torch.nn.ReLU(), torch.nn.Linear(128, classes)])
