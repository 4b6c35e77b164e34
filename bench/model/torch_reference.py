"""Reference numbers from PyTorch for the model unit tests (engine/src/model/).

Run with any Python that has torch and numpy:  python bench/model/torch_reference.py
Prints the expected values pasted into `matches_pytorch_conv_block` (unet.rs) and the trainable
parameter count asserted in `paper_parameter_count` (model/tests.rs). Measured with torch 2.15.
"""
import numpy as np, torch, torch.nn as nn
torch.set_num_threads(1)
def vals(n, k, scale):
    return (np.sin(0.37 * np.arange(n, dtype=np.float64) + k) * scale).astype(np.float32)
def t(n, k, scale, shape):
    return torch.from_numpy(vals(n, k, scale).reshape(shape))
x = t(32, 0.0, 1.0, (2, 1, 4, 4))
block = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.LeakyReLU(), nn.Dropout(0.0),
                      nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2), nn.LeakyReLU())
up = nn.ConvTranspose2d(2, 1, 2, stride=2)
with torch.no_grad():
    block[0].weight.copy_(t(18, 1.0, 0.3, (2, 1, 3, 3))); block[0].bias.copy_(t(2, 2.0, 0.1, (2,)))
    block[4].weight.copy_(t(36, 3.0, 0.3, (2, 2, 3, 3))); block[4].bias.copy_(t(2, 4.0, 0.1, (2,)))
    block[1].weight.copy_(t(2, 5.0, 0.5, (2,)) + 1); block[1].bias.copy_(t(2, 6.0, 0.2, (2,)))
    block[5].weight.copy_(t(2, 7.0, 0.5, (2,)) + 1); block[5].bias.copy_(t(2, 8.0, 0.2, (2,)))
    up.weight.copy_(t(8, 9.0, 0.4, (2, 1, 2, 2))); up.bias.copy_(t(1, 10.0, 0.1, (1,)))
    block.train(); y = block(x); z = up(y)
    block.eval(); ye = block(x)
def lit(a): return ", ".join(f"{v:.6}" for v in a.flatten().tolist())
print("train y:", lit(y)); print("train z sum/first:", float(z.sum()), lit(z[0,0,0]))
print("eval y:", lit(ye))
print("running_mean", block[1].running_mean.tolist(), "running_var", block[1].running_var.tolist())

def make_block(i, o, p): return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.LeakyReLU(), nn.Dropout(p),
                                         nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.LeakyReLU())
f = [16, 32, 64, 128, 256]; d = [0.05, 0.1, 0.2, 0.3, 0.5]
mods = [make_block(1, f[0], d[0])] + [make_block(f[l - 1], f[l], d[l]) for l in range(1, 5)]
for l in (3, 2, 1, 0):
    mods += [nn.ConvTranspose2d(f[l + 1], f[l], 2, stride=2), make_block(2 * f[l], f[l], 0.0)]
mods.append(nn.Conv2d(f[0], 2, 3, padding=1))
m = nn.ModuleList(mods)
print("params", sum(p.numel() for p in m.parameters()), "buffers(float)", sum(b.numel() for n, b in m.named_buffers() if 'num_batches' not in n))

# Two SGD steps (lr 0.03, momentum 0.9, dampening 0, weight decay 1e-4) of the block and the
# transposed convolution above, from the same initial weights, on loss = sum(up(block(x)) * wt).
import copy
block2, up2 = copy.deepcopy(block), copy.deepcopy(up)
with torch.no_grad():
    for m in (block2[1], block2[5]):
        m.reset_running_stats()
block2.train()
wt = t(128, 11.0, 1.0, (2, 1, 8, 8))
opt = torch.optim.SGD(list(block2.parameters()) + list(up2.parameters()), lr=0.03, momentum=0.9, weight_decay=1e-4)
for _ in range(2):
    opt.zero_grad()
    loss = (up2(block2(x)) * wt).sum()
    loss.backward()
    opt.step()
print("sgd conv1.weight:", lit(block2[0].weight.detach()))
print("sgd bn2.weight:", lit(block2[5].weight.detach()), "up.weight:", lit(up2.weight.detach()))
