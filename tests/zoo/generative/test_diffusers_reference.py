"""Our diffusion process against Hugging Face diffusers' DDPMScheduler and DDIMScheduler (float32 there)."""

import diffusers
import pytest
import torch

from deepatlas.zoo.generative.ddim import ddim_step
from deepatlas.zoo.generative.ddpm import Diffusion

@pytest.mark.parametrize("ours,theirs", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
def test_schedule_and_closed_form_match_diffusers(ours, theirs):
    d = Diffusion(1000, ours)
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=theirs)
    torch.testing.assert_close(d.betas.float(), ref.betas, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(d.alpha_bar.float(), ref.alphas_cumprod, rtol=1e-4, atol=1e-7)
    x0, eps, t = torch.randn(6, 3), torch.randn(6, 3), torch.tensor([0, 1, 10, 500, 998, 999])
    torch.testing.assert_close(d.q_sample(x0, t, eps), ref.add_noise(x0, eps, t), rtol=1e-4, atol=1e-5)


def _eps_net():
    w = torch.randn(3, 3) * 0.3
    return lambda x, t: torch.tanh(x @ w) + t[:, None].float() / 1000


@pytest.mark.parametrize("steps", [1000, 50])
def test_ancestral_steps_match_diffusers_ddpm(steps):
    torch.manual_seed(0)
    d, eps_fn = Diffusion(1000), _eps_net()
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, clip_sample=False, variance_type="fixed_small",
                                  timestep_spacing="trailing")
    ref.set_timesteps(steps)
    seq = d.timesteps(steps)
    assert seq == ref.timesteps.tolist()
    for t, s in list(zip(seq, seq[1:] + [-1]))[:: max(1, len(seq) // 8)]:
        x_t = torch.randn(4, 3)
        eps = eps_fn(x_t, torch.full((4,), t))
        theirs = ref.step(eps, t, x_t, generator=torch.Generator().manual_seed(t)).prev_sample
        z = torch.randn(4, 3, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(d.p_step(eps_fn, x_t, t, s, z), theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("steps", [50, 10])
def test_ddim_steps_match_diffusers_ddim(steps):
    torch.manual_seed(0)
    d, eps_fn = Diffusion(1000), _eps_net()
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=True,
                                  timestep_spacing="trailing")
    ref.set_timesteps(steps)
    seq = d.timesteps(steps)
    assert seq == ref.timesteps.tolist()
    for t, s in zip(seq, seq[1:] + [-1]):
        x_t = torch.randn(4, 3)
        eps = eps_fn(x_t, torch.full((4,), t))
        theirs = ref.step(eps, t, x_t, eta=0.0).prev_sample
        torch.testing.assert_close(ddim_step(d, eps_fn, x_t, t, s), theirs, rtol=1e-4, atol=1e-5)
