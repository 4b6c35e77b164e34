"""PyTorch peer of engine/benches/unet.rs: the same U-Net (paper config), loss and SGD (momentum
0.9 without dampening, weight decay 1e-4, lr 0.03), one training step and one inference batch.

python bench/model/torch_unet.py [--threads 2] [--size 128] [--batch 8] [--reps 3]
Prints the median and minimum of the timed repetitions, and one `json: {...}` line (bench/model/run.sh).
"""
import argparse, json, time
import torch, torch.nn as nn, torch.nn.functional as F

def block(i, o, p):
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.LeakyReLU(), nn.Dropout(p),
                         nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.LeakyReLU())

class UNet(nn.Module):
    def __init__(self, f=(16, 32, 64, 128, 256), d=(0.05, 0.1, 0.2, 0.3, 0.5), classes=2):
        super().__init__()
        self.enc = nn.ModuleList([block(1 if l == 0 else f[l - 1], f[l], d[l]) for l in range(len(f))])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(f[l + 1], f[l], 2, stride=2) for l in reversed(range(len(f) - 1))])
        self.dec = nn.ModuleList([block(2 * f[l], f[l], 0.0) for l in reversed(range(len(f) - 1))])
        self.head = nn.Conv2d(f[0], classes, 3, padding=1)

    def forward(self, x):
        skips = []
        for l, b in enumerate(self.enc):
            x = b(x if l == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, b in zip(self.ups, self.dec):
            x = b(torch.cat([skips.pop(), up(x)], 1))
        return self.head(x)

def loss_fn(logits, y):
    ce = F.cross_entropy(logits, y)
    p = logits.softmax(1)[:, 1]
    t = (y == 1).float()
    dice = 1 - (2 * (p * t).sum() + 1e-5) / ((p * p).sum() + (t * t).sum() + 1e-5)
    return 0.5 * (ce + dice)

def timed(reps, f):
    f()
    t = []
    for _ in range(max(reps, 1)):
        s = time.perf_counter(); f(); t.append(time.perf_counter() - s)
    t.sort()
    return t[len(t) // 2], t[0]

def main():
    a = argparse.ArgumentParser()
    a.add_argument("--threads", type=int, default=2); a.add_argument("--size", type=int, default=128)
    a.add_argument("--batch", type=int, default=8); a.add_argument("--reps", type=int, default=3)
    a = a.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    net = UNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(a.batch, 1, a.size, a.size); y = torch.randint(0, 2, (a.batch, a.size, a.size))
    def step():
        opt.zero_grad(); loss_fn(net(x), y).backward(); opt.step()
    net.train(); tr = timed(a.reps, step)
    net.eval()
    with torch.no_grad():
        inf = timed(a.reps, lambda: net(x))
    print(f"pytorch {torch.__version__}, {a.threads} threads, batch [{a.batch}, 1, {a.size}, {a.size}], {a.reps} reps")
    print(f"  training step:   median {tr[0]:.3f} s  (min {tr[1]:.3f} s)")
    print(f"  inference batch: median {inf[0]:.3f} s  (min {inf[1]:.3f} s)")
    print("json: " + json.dumps({"impl": "pytorch", "version": torch.__version__, "threads": a.threads,
                                 "batch": a.batch, "size": a.size, "reps": a.reps,
                                 "train_median_s": tr[0], "train_min_s": tr[1],
                                 "infer_median_s": inf[0], "infer_min_s": inf[1]}))

if __name__ == "__main__":
    main()
