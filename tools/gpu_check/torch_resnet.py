#!/usr/bin/env python3
"""PyTorch eager's side of the GPU comparison (tools/gpu_check.sh run, on the GPU host).

Times ResNet-18 and ResNet-50 inference at batch 64 on GPU 0 in float32, the input already
on the device, as gpu_check times kiln's artifacts (the best of 5 rounds of 10 calls, after
a warm-up), and prints kiln's figures beside them from gpu_check's log:

    torch_resnet.py --kiln-log LOG

Two PyTorch settings: strict float32 (TF32 off for matrix products and convolutions, as
kiln runs without --allow-tf32) and PyTorch's defaults (cuDNN may use TF32 for
convolutions). The models are torchvision's architectures, random weights (timing only);
torchvision is used where installed, else the same architecture defined here.
"""

import argparse
import re
import sys

import torch
from torch import nn

BATCH = 64


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(block, 64, layers[0])
        self.layer2 = self._layer(block, 128, layers[1], 2)
        self.layer3 = self._layer(block, 256, layers[2], 2)
        self.layer4 = self._layer(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, classes)

    def _layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build(name):
    try:
        import torchvision  # noqa: F401
        return getattr(torchvision.models, name)(), "torchvision"
    except ImportError:
        block, layers = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet50": (Bottleneck, [3, 4, 6, 3])}[name]
        return ResNet(block, layers), "defined here"


def time_model(model, x):
    with torch.no_grad():
        for _ in range(5):
            model(x)
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(5):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                model(x)
            end.record()
            torch.cuda.synchronize()
            best = min(best, start.elapsed_time(end) / 10)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kiln-log", help="gpu_check's output, for kiln's figures")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("torch_resnet: no CUDA device for PyTorch")
        return 2
    kiln = {}
    if args.kiln_log:
        for line in open(args.kiln_log):
            match = re.match(r"timing (\w+)_b64: ([0-9.]+) ms", line)
            if match:
                kiln[match.group(1)] = float(match.group(2))
    print("PyTorch %s on %s, batch %d, float32" % (torch.__version__, torch.cuda.get_device_name(0), BATCH))
    print("| model | kiln ms | PyTorch fp32 ms (TF32 off) | kiln / PyTorch fp32 | PyTorch default ms (TF32 convs) |")
    print("|---|---:|---:|---:|---:|")
    torch.manual_seed(0)
    for name in ("resnet18", "resnet50"):
        model, source = build(name)
        model = model.cuda().eval()
        x = torch.randn(BATCH, 3, 224, 224, device="cuda")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        strict = time_model(model, x)
        torch.backends.cudnn.allow_tf32 = True
        default = time_model(model, x)
        ours = kiln.get(name)
        ratio = "%.2f" % (ours / strict) if ours else "n/a"
        print("| %s (%s) | %s | %.3f | %s | %.3f |" % (name, source, "%.3f" % ours if ours else "n/a", strict, ratio,
                                                      default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
