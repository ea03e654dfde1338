"""scripts/gptj.py against a literal transcription of HF's GPT-J (hf_reference.py),
plus the training helpers the embedded-model trainer uses."""
import pytest
import torch

from gptj import GPTJConfig, GPTJForCausalLM, causal_lm_loss, expected_hf_names, positions_from_mask
from hf_reference import hf_forward


def make(rotary_dim, seed=0, **kw):
    cfg = GPTJConfig(vocab_size=101, n_positions=64, n_embd=64, n_layer=2, n_head=4, rotary_dim=rotary_dim, n_inner=96, **kw)
    m = GPTJForCausalLM(cfg)
    m.init_weights(std=0.2, randomize_all=True, generator=torch.Generator().manual_seed(seed))
    return m.eval(), cfg


@pytest.mark.parametrize("rotary_dim", [8, 16])
def test_matches_hf_formulation_prefill_and_cached_steps(rotary_dim):
    m, cfg = make(rotary_dim)
    sd = m.state_dict()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 101, (2, 6), generator=g)
    mask = torch.ones(2, 6, dtype=torch.int64)
    mask[1, :2] = 0
    pos = positions_from_mask(mask, 6)
    with torch.no_grad():
        ours, p_ours = m(ids, mask, pos)
        ref, p_ref = hf_forward(sd, cfg, ids, mask, pos)
        valid = mask.bool()
        assert (ours - ref).abs()[valid].max().item() < 1e-4
        assert ours.abs().max().item() > 1.0  # logits of a real size, so the comparison means something
        for step in range(2):
            nxt = torch.randint(0, 101, (2, 2), generator=g)
            mask = torch.cat([mask, torch.ones(2, 2, dtype=torch.int64)], dim=1)
            pos = positions_from_mask(mask, 2)
            ours, p_ours = m(nxt, mask, pos, p_ours)
            ref, p_ref = hf_forward(sd, cfg, nxt, mask, pos, p_ref)
            assert (ours - ref).abs().max().item() < 1e-4
            # Cached keys/values agree on real slots (padding slots hold garbage both ways, masked).
            real = mask.bool()[:, None, :, None]
            for (ko, vo), (kr, vr) in zip(p_ours, p_ref):
                assert ((ko - kr).abs() * real).max().item() < 1e-5 and ((vo - vr).abs() * real).max().item() < 1e-5


def test_reference_catches_a_wrong_rotation():
    # The comparison above can fail: a model with GPT-NeoX's rotate_half convention differs.
    m, cfg = make(8)
    half = 4
    r = torch.zeros(8, 8)
    for i in range(half):
        r[i + half, i] = -1.0
        r[i, i + half] = 1.0
    for block in m.transformer.h:
        block.attn.rot_matrix.copy_(r)
    ids = torch.randint(0, 101, (1, 6), generator=torch.Generator().manual_seed(2))
    mask = torch.ones(1, 6, dtype=torch.int64)
    with torch.no_grad():
        ours, _ = m(ids, mask, positions_from_mask(mask, 6))
        ref, _ = hf_forward(m.state_dict(), cfg, ids, mask, positions_from_mask(mask, 6))
    assert (ours - ref).abs().max().item() > 1e-2


def test_state_dict_names_are_hf_names():
    m, cfg = make(8)
    names = list(m.state_dict().keys())
    assert names == expected_hf_names(cfg)
    assert "transformer.h.1.attn.q_proj.weight" in names and "lm_head.bias" in names
    assert not any("bias" in n and "attn" in n for n in names)  # q/k/v/out have no bias


def test_defaults_mask_and_positions_for_training():
    m, _ = make(8)
    ids = torch.randint(0, 101, (2, 5), generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 5, dtype=torch.int64)
    with torch.no_grad():
        a, _ = m(ids)
        b, _ = m(ids, mask, torch.arange(5).unsqueeze(0).repeat(2, 1))
    assert torch.equal(a, b)


def test_left_padding_equals_the_unpadded_row():
    m, _ = make(8)
    ids = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[0, 0, 5, 6, 7, 8]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
    with torch.no_grad():
        a, _ = m(ids)
        b, _ = m(padded, mask)
    assert (a[0] - b[0, 2:]).abs().max().item() < 1e-5


def test_causal_lm_loss_trains():
    torch.manual_seed(0)
    cfg = GPTJConfig(vocab_size=50, n_positions=32, n_embd=32, n_layer=1, n_head=2, rotary_dim=8, n_inner=64)
    m = GPTJForCausalLM(cfg)
    m.init_weights()
    ids = torch.randint(0, 50, (4, 12))
    labels = ids.clone()
    labels[:, :3] = -100  # no loss on a "prompt"
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        logits, _ = m(ids)
        loss = causal_lm_loss(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 3.0 and losses[-1] < losses[0] * 0.5
    # Manual check of the shift: position t predicts labels[t + 1].
    logits = torch.randn(1, 3, 5)
    lab = torch.tensor([[1, 2, 3]])
    want = (torch.nn.functional.cross_entropy(logits[0, 0:1], lab[0, 1:2]) + torch.nn.functional.cross_entropy(logits[0, 1:2], lab[0, 2:3])) / 2
    assert torch.allclose(causal_lm_loss(logits, lab), want)


def test_config_round_trip_keeps_unknown_keys():
    d = {"model_type": "gptj", "vocab_size": 10, "n_embd": 16, "n_head": 2, "n_layer": 1, "rotary_dim": 4, "custom": 1}
    cfg = GPTJConfig.from_dict(d)
    out = cfg.to_hf_dict()
    assert out["custom"] == 1 and out["model_type"] == "gptj" and out["n_inner"] is None
    with pytest.raises(ValueError):
        GPTJConfig.from_dict({**d, "model_type": "llama"})
    with pytest.raises(ValueError):
        GPTJConfig.from_dict({**d, "rotary_dim": 12})
