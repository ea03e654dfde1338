"""An independent transcription of Hugging Face's modeling_gptj forward
(transformers 4.x: slot-based causal triangle, additive padding mask,
rotate_every_two by strided slices, sin/cos gathered from one table).

Tests only: it is written the way HF writes it (negative dims, `...`-free but
not exportable with torch 1.13) so it checks scripts/gptj.py's export-friendly
reformulations (rotation as a MatMul, mask from positions) against the original
formulation, without the `transformers` package.
"""
import torch


def create_sinusoidal_positions(num_pos, dim):
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.int64) / dim))
    sinusoid_inp = torch.einsum("i , j -> i j", torch.arange(num_pos, dtype=torch.int64).float(), inv_freq).float()
    return torch.cat((torch.sin(sinusoid_inp), torch.cos(sinusoid_inp)), dim=1)


def rotate_every_two(x):
    x1 = x[:, :, :, ::2]
    x2 = x[:, :, :, 1::2]
    x = torch.stack((-x2, x1), dim=-1)
    return x.flatten(-2)


def apply_rotary_pos_emb(tensor, sin, cos):
    sin = torch.repeat_interleave(sin[:, :, None, :], 2, 3)
    cos = torch.repeat_interleave(cos[:, :, None, :], 2, 3)
    return (tensor * cos) + (rotate_every_two(tensor) * sin)


def new_gelu(x):
    import math
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def hf_forward(sd, cfg, input_ids, attention_mask, position_ids, past=None):
    """sd: HF-named state dict; cfg: GPTJConfig. Returns (logits, presents)."""
    n_head, e = cfg.n_head, cfg.n_embd
    hd = e // n_head
    rot = cfg.rotary_dim
    embed_positions = create_sinusoidal_positions(cfg.n_positions, rot or e)
    max_pos = cfg.n_positions
    bias = torch.tril(torch.ones((max_pos, max_pos), dtype=torch.bool)).view(1, 1, max_pos, max_pos)
    ext = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    h = torch.nn.functional.embedding(input_ids, sd["transformer.wte.weight"])
    presents = []
    for i in range(cfg.n_layer):
        p = f"transformer.h.{i}."
        residual = h
        x = torch.nn.functional.layer_norm(h, (e,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], cfg.layer_norm_epsilon)
        q = x @ sd[p + "attn.q_proj.weight"].T
        k = x @ sd[p + "attn.k_proj.weight"].T
        v = x @ sd[p + "attn.v_proj.weight"].T
        q = q.view(q.size()[:-1] + (n_head, hd))
        k = k.view(k.size()[:-1] + (n_head, hd))
        v = v.view(v.size()[:-1] + (n_head, hd)).permute(0, 2, 1, 3)
        rep = position_ids.unsqueeze(-1).repeat(1, 1, embed_positions.shape[-1])
        sincos = torch.gather(embed_positions.unsqueeze(0).repeat(position_ids.shape[0], 1, 1), 1, rep)
        sin, cos = torch.split(sincos, sincos.shape[-1] // 2, dim=-1)
        if rot is not None:
            k_rot, k_pass = k[:, :, :, :rot], k[:, :, :, rot:]
            q_rot, q_pass = q[:, :, :, :rot], q[:, :, :, rot:]
            k = torch.cat([apply_rotary_pos_emb(k_rot, sin, cos), k_pass], dim=-1)
            q = torch.cat([apply_rotary_pos_emb(q_rot, sin, cos), q_pass], dim=-1)
        else:
            k = apply_rotary_pos_emb(k, sin, cos)
            q = apply_rotary_pos_emb(q, sin, cos)
        k = k.permute(0, 2, 1, 3)
        q = q.permute(0, 2, 1, 3)
        if past is not None:
            k = torch.cat((past[i][0], k), dim=-2)
            v = torch.cat((past[i][1], v), dim=-2)
        presents.append((k, v))
        ql, kl = q.size(-2), k.size(-2)
        causal = bias[:, :, kl - ql: kl, :kl]
        w = torch.matmul(q.float(), k.float().transpose(-1, -2))
        w = torch.where(causal, w, torch.tensor(torch.finfo(w.dtype).min))
        w = w / torch.sqrt(torch.tensor(hd, dtype=torch.float32))
        w = w + ext
        w = torch.softmax(w, dim=-1).to(v.dtype)
        a = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous()
        a = a.view(a.size()[:-2] + (n_head * hd,))
        a = a @ sd[p + "attn.out_proj.weight"].T
        f = x @ sd[p + "mlp.fc_in.weight"].T + sd[p + "mlp.fc_in.bias"]
        f = new_gelu(f)
        f = f @ sd[p + "mlp.fc_out.weight"].T + sd[p + "mlp.fc_out.bias"]
        h = a + f + residual
    h = torch.nn.functional.layer_norm(h, (e,), sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"], cfg.layer_norm_epsilon)
    logits = (h @ sd["lm_head.weight"].T + sd["lm_head.bias"]).float()
    return logits, presents
