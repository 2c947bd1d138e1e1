"""The five benchmark networks as plain layer specs, and their PyTorch
versions. No imports (torch is passed in), so that the peak-memory child
processes load only the framework they measure.

A spec is a list of ``("dense", in, out)``, ``("conv", cin, cout, bias)``
(3x3, stride 1, padding 1), ``("bn", channels)``, ``("relu",)``, ``("pool",)``
(2x2 max) and ``("flatten",)``. The last dense layer gives the logits (softmax
cross-entropy). ``opt`` is the optimizer: "sgd", "momentum" (the thesis'
v = 0.9 v + 0.1 g) or "adam" (beta1 0.9, beta2 0.99, eps 1e-8).
"""

from __future__ import annotations


def _mlp_spec(nodes):
    spec = []
    for i, (a, b) in enumerate(zip(nodes[:-1], nodes[1:])):
        spec.append(("dense", a, b))
        if i < len(nodes) - 2:
            spec.append(("relu",))
    return spec


def _vgg_block(cin, cout):
    return [("conv", cin, cout, False), ("bn", cout), ("relu",)]


CNN_SPEC = [("conv", 1, 32, True), ("relu",), ("pool",), ("conv", 32, 64, True), ("relu",), ("pool",),
            ("flatten",), ("dense", 64 * 7 * 7, 128), ("relu",), ("dense", 128, 10)]
VGG_SPEC = (_vgg_block(3, 64) + _vgg_block(64, 64) + [("pool",)] + _vgg_block(64, 128) + _vgg_block(128, 128)
            + [("pool",)] + _vgg_block(128, 256) + _vgg_block(256, 256) + [("pool",), ("flatten",), ("dense", 4096, 10)])

MODELS = {
    "a": {"title": "(a) MLP 784-500-100-50-25-10, SGD", "nodes": [784, 500, 100, 50, 25, 10], "opt": "sgd",
          "lr": 0.01, "batch": 64},
    "b": {"title": "(b) MLP 3072-5000-1000-500-75-10, SGD", "nodes": [3072, 5000, 1000, 500, 75, 10], "opt": "sgd",
          "lr": 0.01, "batch": 64},
    "c": {"title": "(c) MLP 2-250-100-50-4 (spiral), Adam", "nodes": [2, 250, 100, 50, 4], "opt": "adam",
          "lr": 1e-3, "batch": 128},
    "d": {"title": "(d) CNN 1x28x28 (MNIST), momentum", "input": (1, 28, 28), "spec": CNN_SPEC, "opt": "momentum",
          "lr": 0.01, "batch": 64},
    "e": {"title": "(e) VGG-style 3x32x32 + BN, momentum", "input": (3, 32, 32), "spec": VGG_SPEC,
          "opt": "momentum", "lr": 0.01, "batch": 64},
}
for _cfg in MODELS.values():
    if "nodes" in _cfg:
        _cfg["spec"] = _mlp_spec(_cfg["nodes"])
        _cfg["input"] = (_cfg["nodes"][0],)
    _cfg["mlp"] = "nodes" in _cfg
    _cfg["classes"] = _cfg["spec"][-1][2]


# ---------------------------------------------------------------- PyTorch


def build_torch(torch, cfg, model=None, channels_last: bool = False):
    """A torch ``nn.Sequential`` for ``cfg``, float32, with the weights of the
    natverk ``model`` (a Sequential built from the same spec) or, when
    ``model`` is None, torch's own initialisation."""
    nn = torch.nn
    mods = []
    for item in cfg["spec"]:
        kind = item[0]
        if kind == "dense":
            mods.append(nn.Linear(item[1], item[2]))
        elif kind == "conv":
            mods.append(nn.Conv2d(item[1], item[2], 3, padding=1, bias=item[3]))
        elif kind == "bn":
            mods.append(nn.BatchNorm2d(item[1], eps=1e-5, momentum=0.1))
        elif kind == "relu":
            mods.append(nn.ReLU())
        elif kind == "pool":
            mods.append(nn.MaxPool2d(2))
        else:
            mods.append(nn.Flatten())
    net = nn.Sequential(*mods).float()
    if model is not None:
        with torch.no_grad():
            for item, m, layer in zip(cfg["spec"], mods, model.layers):
                if item[0] == "dense":  # natverk's W is (in, out), torch's (out, in)
                    m.weight.copy_(torch.from_numpy(layer.W.T.copy()))
                    m.bias.copy_(torch.from_numpy(layer.b))
                elif item[0] == "conv":
                    m.weight.copy_(torch.from_numpy(layer.W))
                    if item[3]:
                        m.bias.copy_(torch.from_numpy(layer.b))
                elif item[0] == "bn":
                    m.weight.copy_(torch.from_numpy(layer.gamma))
                    m.bias.copy_(torch.from_numpy(layer.beta))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def torch_optimizer(torch, cfg, net):
    params = list(net.parameters())
    if cfg["opt"] == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"])
    if cfg["opt"] == "momentum":
        # natverk's (the thesis') momentum is v = beta v + (1 - beta) g, w -= lr v: torch's SGD with
        # dampening = beta, once its buffers start at zero (torch would start them at g).
        opt = torch.optim.SGD(params, lr=cfg["lr"], momentum=0.9, dampening=0.9)
        for p in params:
            opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
        return opt
    return torch.optim.Adam(params, lr=cfg["lr"], betas=(0.9, 0.99), eps=1e-8)


def torch_stepper(torch, net, opt):
    F = torch.nn.functional

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
        return loss.detach()

    return step
