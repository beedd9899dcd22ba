#!/usr/bin/env python3
"""PyTorch's own (eager, Python) HA-CM `released` pretraining step, for the CPU comparison of
issue #6: the same computation as accelerated/hacm.cpp (and the MAMP baseline's,
accelerated/mamp.cpp) written with torch ops from Python, so the
ratio "our C++ step / PyTorch step" at the same configuration measures what the C++ port costs or
saves (Python dispatch, our kernels), not a different model.

Before timing it checks itself against the golden forward case (the authors' code, float64):
the float32 loss with the golden selections injected must agree within 1e-5 relative (README of
the golden set, section 5). Then it times forward + backward + torch.optim.AdamW (foreach) on the
CPU and prints one JSON line per configuration (median over repetitions).

  .venv/bin/python bench/pytorch_step.py [--threads 2] [--reps 5] [--golden DIR] [--configs small,full,mamp]
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

KEPT = [2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19, 21, 22, 23, 24]  # core/skeleton.cpp
ROOT = [0, 1, 4, 8, 12, 16, 20]


def expmap_proj(x):
    """expmap0 then projection into the ball (scale 1 at the origin)."""
    n = x.norm(dim=-1, keepdim=True)
    nc = n.clamp_min(1e-30)
    y = x * torch.where(n == 0, torch.ones_like(n), torch.tanh(nc) / nc)
    m = y.norm(dim=-1, keepdim=True)
    return torch.where(m >= 1.0, y * ((1.0 - 1e-5) / m.clamp_min(1e-30)), y)


def poincare_dist(u, v, factor):
    z = factor * (u - v).pow(2).sum(-1) / ((1 - u.pow(2).sum(-1)) * (1 - v.pow(2).sum(-1)))
    pos = z > 0
    return torch.where(pos, torch.acosh(1 + torch.where(pos, z, torch.ones_like(z))), torch.zeros_like(z))


def patch_embed(x, w, b):
    nm, t, v, c = x.shape
    d, tp = w.shape[0], w.shape[2]
    xp = x.reshape(nm, t // tp, tp, v, c).permute(0, 1, 3, 4, 2).reshape(nm, t // tp, v, c * tp)
    return F.linear(xp, w.reshape(d, c * tp), b)


def block(x, p, pre, heads):
    b, n, d = x.shape
    h = F.layer_norm(x, (d,), p[pre + "norm1.weight"], p[pre + "norm1.bias"])
    qkv = F.linear(h, p[pre + "attn.qkv.weight"], p[pre + "attn.qkv.bias"])
    q, k, v = qkv.reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
    y = x + F.linear(a, p[pre + "attn.proj.weight"], p[pre + "attn.proj.bias"])
    h = F.layer_norm(y, (d,), p[pre + "norm2.weight"], p[pre + "norm2.bias"])
    h = F.linear(F.gelu(F.linear(h, p[pre + "mlp.fc1.weight"], p[pre + "mlp.fc1.bias"])),
                 p[pre + "mlp.fc2.weight"], p[pre + "mlp.fc2.bias"])
    return y + h


def select(score, U, K, temperature, inject=None, descending=True):
    with torch.no_grad():
        sn = score / (temperature * score.max(-1, keepdim=True).values + 1e-10)
        key = torch.log(torch.softmax(sn, -1)) - torch.log(-torch.log(U + 1e-10) + 1e-10)
        shuffle = inject if inject is not None else torch.sort(key, dim=-1, descending=descending, stable=True).indices
        restore = torch.sort(shuffle, dim=-1, stable=True).indices
        m = torch.ones_like(score)
        m[:, :K] = 0
        return shuffle[:, :K], restore, torch.gather(m, 1, restore)


def rows(x, idx):
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


def hacm_released_loss(p, x5, Ut, Us, depth, dec_depth, heads, t_patch=3, inject=None):
    N, _, T, _, M = x5.shape
    NM, V, d = N * M, len(KEPT), p["norm.weight"].shape[0]
    TP = T // t_patch
    TPh = TP // 2
    Lg = TPh * V
    K = int(0.1 * Lg)
    x = x5.permute(0, 4, 2, 3, 1).reshape(NM, T, 25, 3)
    xk, xn = x[:, :, KEPT], x[:, :, ROOT]
    w, b = p["joints_embed.proj.weight"], p["joints_embed.proj.bias"]
    mc = patch_embed(xk, w, b) + p["pos_embed"] + p["temp_embed"]
    H = expmap_proj(mc)
    with torch.no_grad():
        me = mc[:, 0::2]
        q = F.linear(me, p["l1.weight"], p["l1.bias"])
        k = F.linear(me, p["l2.weight"], p["l2.bias"])
        S = torch.matmul(q.permute(0, 2, 1, 3), k.permute(0, 2, 3, 1))
        score_t = torch.softmax(S * math.sqrt(d), 1).sum(2).reshape(NM, Lg)
        Hs = H[:, 1::2]
        father = expmap_proj(patch_embed(xn, w, b)).mean(2)[:, 1::2]
        sq = (Hs * Hs).sum(-1)
        diff2 = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2 * Hs @ Hs.transpose(-2, -1)).clamp_min(0)
        diff2 = diff2 * (1 - torch.eye(V, dtype=Hs.dtype))
        om = 1 - sq
        D = torch.acosh(1 + 4.0 * diff2 / (om.unsqueeze(-1) * om.unsqueeze(-2)))
        Df = poincare_dist(father.unsqueeze(2), Hs, 4.0)
        score_s = (D.sum(2) + 0.01 * Df).permute(0, 2, 1).reshape(NM, Lg)
    keep_t, restore_t, mask_t = select(score_t, Ut, K, 0.9, inject[0] if inject else None)
    keep_s, restore_s, mask_s = select(score_s, Us, K, 0.9, inject[1] if inject else None)
    Zt = H[:, 0::2].permute(0, 2, 1, 3).reshape(NM, Lg, d)
    Zs = H[:, 1::2].reshape(NM, Lg, d)
    z = torch.cat([rows(Zt, keep_t), rows(Zs, keep_s)], 1)
    for i in range(depth):
        z = block(z, p, f"blocks.{i}.", heads)
    lat = F.layer_norm(z, (d,), p["norm.weight"], p["norm.bias"])
    a, bb, g = lat[:, :K].mean(1), lat[:, K:].mean(1), lat.mean(1)
    I = torch.eye(NM, dtype=lat.dtype)
    loss_cc = sum(F.mse_loss(torch.softmax(u @ v.t(), -1), I) for u, v in ((bb, g), (a, g), (a, bb)))
    y = F.linear(lat, p["decoder_embed.weight"], p["decoder_embed.bias"])
    seq = torch.cat([y, p["mask_token_t"].expand(NM, 2 * Lg - 2 * K, d)], 1)
    dec = rows(seq, torch.cat([restore_t, restore_s + Lg], 1))
    dec = (dec.reshape(NM, TP, V, d) + p["decoder_pos_embed"] + p["decoder_temp_embed"]).reshape(NM, 2 * Lg, d)
    for j in range(dec_depth):
        dec = block(dec, p, f"decoder_blocks.{j}.", heads)
    dec = F.layer_norm(dec, (d,), p["decoder_norm.weight"], p["decoder_norm.bias"])
    pred = F.linear(dec, p["decoder_pred.weight"], p["decoder_pred.bias"])
    motion = torch.cat([xk[:, 1:] - xk[:, :-1], torch.zeros_like(xk[:, :1])], 1)
    pt = expmap_proj(motion).reshape(NM, TP, t_patch, V, 3).permute(0, 1, 3, 2, 4).reshape(NM, TP, V, t_patch * 3)
    target = torch.cat([pt[:, 0::2].reshape(NM, Lg, -1), pt[:, 1::2].reshape(NM, Lg, -1)], 1)
    tn = (target - target.mean(-1, keepdim=True)) / torch.sqrt(target.var(-1, keepdim=True) + 1e-6)
    mask = torch.cat([mask_t, mask_s], 1)
    loss_rec = (((pred - tn) ** 2).mean(-1) * mask).sum() / mask.sum()
    return loss_rec + loss_cc


def mamp_loss(p, x5, U, depth, dec_depth, heads, t_patch=4, mask_ratio=0.9, tau=0.8):
    """The MAMP baseline's loss as accelerated/mamp.cpp computes it (motion-aware masking in
    ascending Gumbel order, reconstruction of the frame-difference motion)."""
    N, _, T, V, M = x5.shape
    NM, d, TP = N * M, p["norm.weight"].shape[0], T // t_patch
    L = TP * V
    K = int(L * (1.0 - mask_ratio))
    x = x5.permute(0, 4, 2, 3, 1).reshape(NM, T, V, 3)
    patches = lambda y: y.reshape(NM, TP, t_patch, V, 3).permute(0, 1, 3, 2, 4).reshape(NM, TP, V, t_patch * 3)
    with torch.no_grad():
        P = patches(x)
        dm = (P[:, 1:] - P[:, :-1]).abs()
        motion_raw = torch.cat([dm[:, :1], dm], 1).mean(-1).reshape(NM, L)
    keep, restore, mask = select(motion_raw, U, K, tau, descending=False)
    E = (patch_embed(x, p["joints_embed.proj.weight"], p["joints_embed.proj.bias"]) + p["pos_embed"]
         + p["temp_embed"]).reshape(NM, L, d)
    z = rows(E, keep)
    for i in range(depth):
        z = block(z, p, f"blocks.{i}.", heads)
    lat = F.layer_norm(z, (d,), p["norm.weight"], p["norm.bias"])
    y = F.linear(lat, p["decoder_embed.weight"], p["decoder_embed.bias"])
    dec = rows(torch.cat([y, p["mask_token"].expand(NM, L - K, d)], 1), restore)
    dec = (dec.reshape(NM, TP, V, d) + p["decoder_pos_embed"] + p["decoder_temp_embed"]).reshape(NM, L, d)
    for j in range(dec_depth):
        dec = block(dec, p, f"decoder_blocks.{j}.", heads)
    dec = F.layer_norm(dec, (d,), p["decoder_norm.weight"], p["decoder_norm.bias"])
    pred = F.linear(dec, p["decoder_pred.weight"], p["decoder_pred.bias"])
    t = patches(torch.cat([x[:, 1:] - x[:, :-1], torch.zeros_like(x[:, :1])], 1)).reshape(NM, L, -1)
    tn = (t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, keepdim=True) + 1e-6)
    return (((pred - tn) ** 2).mean(-1) * mask).sum() / mask.sum()


def validate(golden_dir):
    path = os.path.join(golden_dir, "hacm_forward.npz")
    if not os.path.exists(path):
        print(f"validation skipped: {path} not found", file=sys.stderr)
        return True
    g = np.load(path)
    w = np.load(os.path.join(golden_dir, "weights_hacm.npz"))
    p = {k: torch.tensor(w[k], dtype=torch.float32) for k in w.files}
    t = lambda k, dt=torch.float32: torch.tensor(g[k]).to(dt)
    loss = hacm_released_loss(p, t("x5"), t("U_t"), t("U_s"), int(g["cfg_depth"]), int(g["cfg_decoder_depth"]),
                              int(g["cfg_heads"]), inject=(t("ids_shuffle_t", torch.long), t("ids_shuffle_s", torch.long)))
    ref = float(g["loss"])
    ok = abs(loss.item() - ref) <= 1e-5 * abs(ref)
    print(f"validation: loss {loss.item():.9f} vs golden {ref:.9f} -> {'OK' if ok else 'MISMATCH'}", file=sys.stderr)
    g = np.load(os.path.join(golden_dir, "mamp_forward.npz"))
    wm = np.load(os.path.join(golden_dir, "weights_mamp.npz"))
    p.update({k: torch.tensor(wm[k], dtype=torch.float32) for k in wm.files})  # over the shared blocks
    loss = mamp_loss(p, t("x5"), t("U"), int(g["cfg_depth"]), int(g["cfg_decoder_depth"]), int(g["cfg_heads"]),
                     int(g["cfg_t_patch"]), float(g["mask_ratio"]), float(g["motion_aware_tau"]))
    ref = float(g["loss"])
    ok_mamp = abs(loss.item() - ref) <= 1e-5 * abs(ref)
    print(f"validation: MAMP loss {loss.item():.9f} vs golden {ref:.9f} -> {'OK' if ok_mamp else 'MISMATCH'}",
          file=sys.stderr)
    return ok and ok_mamp


def params(dim, depth, dec_depth, seed, mamp=False):
    """Random parameters of the given size (timing does not depend on the values): HA-CM's (72
    frames, patch 3, 18 joints) or MAMP's (120 frames, patch 4, 25 joints)."""
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: (torch.randn(*s, generator=gen) * 0.02)
    tp, TP, V = (4, 30, 25) if mamp else (3, 24, 18)
    p = {"joints_embed.proj.weight": r(dim, 3, tp, 1), "joints_embed.proj.bias": r(dim),
         "pos_embed": r(1, 1, V, dim), "temp_embed": r(1, TP, 1, dim),
         "mask_token" if mamp else "mask_token_t": r(1, 1, dim),
         "decoder_pos_embed": r(1, 1, V, dim), "decoder_temp_embed": r(1, TP, 1, dim),
         "norm.weight": 1 + r(dim), "norm.bias": r(dim), "decoder_norm.weight": 1 + r(dim), "decoder_norm.bias": r(dim),
         "decoder_embed.weight": r(dim, dim), "decoder_embed.bias": r(dim),
         "decoder_pred.weight": r(3 * tp, dim), "decoder_pred.bias": r(3 * tp)}
    for pre, n in (("blocks", depth), ("decoder_blocks", dec_depth)):
        for i in range(n):
            b = f"{pre}.{i}."
            p.update({b + "norm1.weight": 1 + r(dim), b + "norm1.bias": r(dim), b + "norm2.weight": 1 + r(dim),
                      b + "norm2.bias": r(dim), b + "attn.qkv.weight": r(3 * dim, dim), b + "attn.qkv.bias": r(3 * dim),
                      b + "attn.proj.weight": r(dim, dim), b + "attn.proj.bias": r(dim),
                      b + "mlp.fc1.weight": r(4 * dim, dim), b + "mlp.fc1.bias": r(4 * dim),
                      b + "mlp.fc2.weight": r(dim, 4 * dim), b + "mlp.fc2.bias": r(dim)})
    trainable = {k: v.requires_grad_(True) for k, v in p.items()}
    if mamp:
        return p, trainable
    p["l1.weight"], p["l1.bias"], p["l2.weight"], p["l2.bias"] = r(dim, dim), r(dim), r(dim, dim), r(dim)
    return p, trainable


CONFIGS = {  # name: (dim, heads, depth, decoder depth, clips) -- bench_hacm_accel's CPU cases
    "small": (64, 4, 2, 1, 2),
    "full": (256, 8, 8, 3, 2),
    "mamp": (256, 8, 8, 5, 2),  # BM_MampPretrainStep/2: MAMP at issue #6's size (decoder 5)
}


def time_step(name, reps, iters):
    dim, heads, depth, dec, clips = CONFIGS[name]
    mamp = name == "mamp"
    p, trainable = params(dim, depth, dec, 7, mamp)
    decay = [v for k, v in trainable.items() if v.dim() > 1 and not k.endswith(".bias")]
    no_decay = [v for k, v in trainable.items() if not (v.dim() > 1 and not k.endswith(".bias"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(11)
    x5 = torch.rand(clips, 3, 120 if mamp else 72, 25, 2, generator=gen) * 2 - 1
    Ut, Us = torch.rand(2 * clips, 216, generator=gen), torch.rand(2 * clips, 216, generator=gen)
    U = torch.rand(2 * clips, 750, generator=gen)

    def step():
        opt.zero_grad()
        loss = mamp_loss(p, x5, U, depth, dec, heads) if mamp else hacm_released_loss(p, x5, Ut, Us, depth, dec, heads)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        times.append((time.perf_counter() - t0) / iters * 1e3)
    return {"config": name, "dim": dim, "depth": depth, "decoder_depth": dec, "clips": clips,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "median_ms": statistics.median(times), "min_ms": min(times), "reps": reps, "iters": iters}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--configs", default="small,full,mamp")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--golden", default=os.environ.get("HACM_GOLDEN_DIR", os.path.join(here, "..", "..", "shared", "golden")))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not validate(a.golden):
        return 1
    for name in a.configs.split(","):
        print(json.dumps(time_step(name, a.reps, a.iters)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
