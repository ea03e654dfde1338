"""GPTJForCausalLM.forward_fast (the fast graphs' attention: shared prefix + per-row past + new,
no KV concatenation) against the plain forward over the whole sequence, in PyTorch."""
import pytest
import torch

from gptj import GPTJConfig, GPTJForCausalLM


def make(rotary_dim, seed=0):
    cfg = GPTJConfig(vocab_size=101, n_positions=64, n_embd=64, n_layer=2, n_head=4, rotary_dim=rotary_dim, n_inner=96)
    m = GPTJForCausalLM(cfg)
    m.init_weights(std=0.2, randomize_all=True, generator=torch.Generator().manual_seed(seed))
    return m.eval(), cfg


def positions(mask):
    return (torch.cumsum(mask, dim=1) - 1).masked_fill(mask == 0, 1)


def empty(rows, cfg):
    return [(torch.zeros(rows, cfg.n_head, 0, cfg.head_dim), torch.zeros(rows, cfg.n_head, 0, cfg.head_dim)) for _ in range(cfg.n_layer)]


@pytest.mark.parametrize("rotary_dim", [8, 16])
@pytest.mark.parametrize("S,P", [(5, 3), (0, 3), (5, 0), (0, 0)])
def test_shared_past_new_equals_the_full_forward(rotary_dim, S, P):
    m, cfg = make(rotary_dim)
    g = torch.Generator().manual_seed(S * 10 + P)
    b, s = 3, 2
    shared = torch.randint(0, 101, (1, S), generator=g)
    past = torch.randint(0, 101, (b, P), generator=g)
    new = torch.randint(0, 101, (b, s), generator=g)
    mask = torch.ones(b, S + P + s, dtype=torch.int64)
    if P:
        mask[1, S] = 0  # a hole in row 1's own past, right after the shared part
    pos = positions(mask)
    with torch.no_grad():
        ref, _ = m(torch.cat([shared.repeat(b, 1), past, new], dim=1), mask, pos)
        shared_kv = empty(1, cfg)
        if S:
            _, shared_kv = m(shared, torch.ones(1, S, dtype=torch.int64), torch.arange(S).unsqueeze(0))
        past_kv = empty(b, cfg)
        if P:
            h, past_kv = m.forward_fast(past, mask[:, : S + P], pos[:, S : S + P], empty(b, cfg), shared_kv)
        h, new_kv = m.forward_fast(new, mask, pos[:, S + P :], past_kv, shared_kv)
        logits = m.head(h)
        assert (logits - ref[:, S + P :]).abs().max().item() < 1e-4
        assert ref.abs().max().item() > 1.0
        # new_key_values are the plain forward's present entries of the new positions
        _, presents = m(torch.cat([shared.repeat(b, 1), past, new], dim=1), mask, pos)
        for (k, v), (pk, pv) in zip(new_kv, presents):
            assert k.shape == (b, cfg.n_head, s, cfg.head_dim)
            assert (k - pk[:, :, S + P :]).abs().max().item() < 1e-5 and (v - pv[:, :, S + P :]).abs().max().item() < 1e-5


def test_the_shared_part_matters():
    # The comparison above can fail: attention that ignored the shared keys would differ.
    m, cfg = make(8)
    g = torch.Generator().manual_seed(3)
    shared = torch.randint(0, 101, (1, 4), generator=g)
    new = torch.randint(0, 101, (2, 2), generator=g)
    with torch.no_grad():
        _, shared_kv = m(shared, torch.ones(1, 4, dtype=torch.int64), torch.arange(4).unsqueeze(0))
        mask = torch.ones(2, 6, dtype=torch.int64)
        h, _ = m.forward_fast(new, mask, positions(mask)[:, 4:], empty(2, cfg), shared_kv)
        masked = mask.clone()
        masked[:, :4] = 0
        h2, _ = m.forward_fast(new, masked, positions(mask)[:, 4:], empty(2, cfg), shared_kv)
    assert (m.head(h) - m.head(h2)).abs().max().item() > 1e-2
