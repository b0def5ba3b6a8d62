#!/opt/kiln-py/bin/python
"""Records a PyTorch training trace for kiln's suite: an MLP (20 -> 32 -> relu -> 10)
trained with plain SGD on the mean softmax cross-entropy, the parameters after every
step, under kiln's names (fc1_weight, ...), so that kiln's step with SoftmaxOutput
(normalization=batch) can be compared with it.

    /opt/kiln-py/bin/python tools/torch/gen_sgd_trace.py [--out tests/data/torch/mlp_sgd.npz]

The archive holds "init/NAME", "data/K", "label/K" and "stepK/NAME" (K from 1), as
tools/mxnet/gen_train_traces.py writes them.
"""

import argparse

import numpy as np
import torch

STEPS = 12
BATCH = 16
LR = 0.1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/data/torch/mlp_sgd.npz")
    args = parser.parse_args()
    torch.manual_seed(3)
    rng = np.random.RandomState(11)
    net = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    names = {"0.weight": "fc1_weight", "0.bias": "fc1_bias", "2.weight": "fc2_weight", "2.bias": "fc2_bias"}
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    arrays = {}

    def record(prefix):
        for key, value in net.state_dict().items():
            arrays[prefix + "/" + names[key]] = value.detach().numpy().copy()

    record("init")
    for k in range(STEPS):
        data = rng.uniform(-1, 1, size=(BATCH, 20)).astype(np.float32)
        label = rng.randint(0, 10, size=(BATCH,))
        arrays["data/%d" % k] = data
        arrays["label/%d" % k] = label.astype(np.float32)
        optimizer.zero_grad()
        loss_fn(net(torch.from_numpy(data)), torch.from_numpy(label)).backward()
        optimizer.step()
        record("step%d" % (k + 1))
    np.savez_compressed(args.out, **arrays)
    print("wrote %s (torch %s, %d steps)" % (args.out, torch.__version__, STEPS))


if __name__ == "__main__":
    main()
