import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.nn.denoisers import TimeMLP, UNet, timestep_embedding
from deepatlas.nn.transformer import sinusoidal_positions
from deepatlas.zoo.generative.ddim import ddim_sample, ddim_step
from deepatlas.zoo.generative.ddpm import DDPM, Diffusion, ImageDDPM, beta_schedule


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_closed_form_equals_the_step_by_step_forward_process_exactly(kind):
    """sqrt(abar_t) x0 + sqrt(1 - abar_t) eps is the distribution of t + 1 forward steps: compose the steps with
    fixed noises and the result is Gaussian around sqrt(abar_t) x0 with the predicted variance, exactly."""
    T = 50
    d = Diffusion(T, kind)
    x0 = torch.randn(4, 3, dtype=torch.float64)
    # the forward chain is linear in the noises: x_t = sqrt(abar_t) x0 + sum_s c_s eps_s
    x, coefs = x0.clone(), []
    for t in range(T):
        tt = torch.full((4,), t)
        x = d.q_step(x, tt, torch.zeros_like(x))  # the mean path
        coefs = [c * d.alphas[t].sqrt() for c in coefs] + [d.betas[t].sqrt()]
        ab = d.alpha_bar[t]
        torch.testing.assert_close(x, ab.sqrt() * x0)
        torch.testing.assert_close(sum(c**2 for c in coefs), 1 - ab)  # the variances of the steps add up


def test_closed_form_matches_forward_chain_moments():
    d = Diffusion(100, "linear")
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1), 1.5, dtype=torch.float64)
    x = x0.clone()
    for t in range(60):
        x = d.q_step(x, torch.full((len(x),), t), torch.randn(x.shape, generator=g, dtype=torch.float64))
    ab = d.alpha_bar[59]
    closed = d.q_sample(x0, torch.full((len(x),), 59), torch.randn(x.shape, generator=g, dtype=torch.float64))
    for sample in (x, closed):
        assert abs(sample.mean() - 1.5 * ab.sqrt()) < 0.03
        assert abs(sample.var() - (1 - ab)) < 0.03


def test_schedules():
    lin = beta_schedule("linear", 1000)
    assert lin[0].item() == pytest.approx(1e-4) and lin[-1].item() == pytest.approx(0.02)
    cos = beta_schedule("cosine", 1000)
    ab = torch.cumprod(1 - cos, 0)
    # Nichol & Dhariwal: abar(t) = cos^2(((t/T + s)/(1 + s)) pi / 2) / abar(0)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert ab[499].item() == pytest.approx(f(0.5) / f(0), rel=1e-9)
    assert Diffusion(1000).alpha_bar[-1] < 1e-4  # x_T is nearly pure noise
    with pytest.raises(ValueError, match="unknown beta schedule"):
        beta_schedule("quadratic", 10)
    with pytest.raises(ValueError, match="T must be"):
        beta_schedule("linear", 0)


def test_ancestral_step_is_the_papers_formula():
    """The posterior around the predicted x0 is the paper's step
    x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma z."""
    d = Diffusion(100)
    net = TimeMLP(2, 16, 1).double()
    x_t, z = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    t = 40
    tt = torch.full((5,), t)
    eps = net(x_t, tt)
    sigma2 = (1 - d.alpha_bar[t - 1]) / (1 - d.alpha_bar[t]) * d.betas[t]
    expected = (x_t - d.betas[t] / (1 - d.alpha_bar[t]).sqrt() * eps) / d.alphas[t].sqrt() + sigma2.sqrt() * z
    torch.testing.assert_close(d.p_step(net, x_t, t, t - 1, z), expected)


def test_ddim_eta0_is_deterministic_and_eta1_reproduces_ddpm():
    d = Diffusion(40)
    net = TimeMLP(2, 16, 1).double()
    x_T = torch.randn(6, 2, dtype=torch.float64)
    a = ddim_sample(d, net, (6, 2), torch.Generator().manual_seed(1), steps=10, x_T=x_T)
    b = ddim_sample(d, net, (6, 2), torch.Generator().manual_seed(2), steps=10, x_T=x_T)
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # eta = 0: only x_T matters
    # eta = 1 on every step is DDPM's ancestral sampler, noise for noise
    ddpm = d.sample(net, (6, 2), torch.Generator().manual_seed(3), x_T=x_T.clone())
    ddim = ddim_sample(d, net, (6, 2), torch.Generator().manual_seed(3), steps=40, eta=1.0, x_T=x_T.clone())
    torch.testing.assert_close(ddim, ddpm)


@settings(max_examples=25, deadline=None)
@given(t=st.integers(1, 99), s_gap=st.integers(1, 30))
def test_ddim_eta1_step_mean_is_the_ddpm_posterior_mean(t, s_gap):
    """With z = 0, a DDIM step with eta = 1 (also when it skips steps) lands on the mean of q(x_s | x_t, x0_hat)."""
    s = max(t - s_gap, -1)
    d = Diffusion(100, "cosine")
    net = TimeMLP(2, 8, 1).double()
    x_t = torch.randn(3, 2, dtype=torch.float64)
    zero = torch.zeros_like(x_t)
    torch.testing.assert_close(ddim_step(d, net, x_t, t, s, eta=1.0, z=zero), d.p_step(net, x_t, t, s, zero))


def test_ddim_with_a_perfect_denoiser_recovers_a_point_mass():
    """If the data is a single point c, eps = (x_t - sqrt(abar) c) / sqrt(1 - abar) exactly; DDIM lands on c."""
    d = Diffusion(1000)
    c = torch.tensor([[0.7, -0.3]], dtype=torch.float64)

    def eps(x, t):
        ab = d.alpha_bar[t].to(x.dtype)[:, None]
        return (x - ab.sqrt() * c) / (1 - ab).sqrt()

    for steps in (1000, 50, 10):
        x = ddim_sample(d, eps, (4, 2), torch.Generator().manual_seed(0), steps=steps,
                        x_T=torch.randn(4, 2, dtype=torch.float64))
        torch.testing.assert_close(x, c.expand(4, 2))


def test_timesteps_and_errors():
    d = Diffusion(1000)
    assert d.timesteps(10) == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert d.timesteps() == list(range(999, -1, -1))
    with pytest.raises(ValueError, match="steps must be"):
        d.timesteps(1001)
    with pytest.raises(ValueError, match="eta must be"):
        ddim_sample(d, lambda x, t: x, (1, 2), torch.Generator(), eta=-1)
    with pytest.raises(ValueError, match="needs the noise"):
        ddim_step(d, lambda x, t: x, torch.zeros(1, 2), 10, 5, eta=0.5)


def test_timestep_embedding_is_the_transformer_code():
    emb = timestep_embedding(torch.arange(7), 16)  # sin half, cos half; the Transformer interleaves them
    pe = sinusoidal_positions(7, 16)
    # same frequencies: omega_i = 10000^{-i / 8}
    torch.testing.assert_close(emb[:, :8], pe[:, 0::2])
    torch.testing.assert_close(emb[:, 8:], pe[:, 1::2])
    with pytest.raises(ValueError, match="even"):
        timestep_embedding(torch.arange(3), 5)


@pytest.mark.parametrize("side,mults", [(14, (1, 2)), (28, (1, 2, 2)), (7, (1, 1))])
def test_unet_shapes_and_class_conditioning(side, mults):
    net = UNet(1, 8, mults, num_classes=10)
    x, t = torch.randn(3, 1, side, side), torch.tensor([0, 500, 999])
    assert net(x, t, torch.tensor([1, 2, 10])).shape == x.shape
    assert net(x, t).shape == x.shape  # no labels: the null class
    with pytest.raises(ValueError, match="no classes"):
        UNet(1, 8, mults)(x, t, torch.tensor([1, 2, 3]))


def test_loss_is_zero_for_an_oracle_and_image_ddpm_shapes():
    d = Diffusion(100)
    g = torch.Generator().manual_seed(0)
    c = torch.tensor([[1.0, 2.0]])

    def oracle(x, t):
        ab = d.alpha_bar[t].float()[:, None]
        return (x - ab.sqrt() * c) / (1 - ab).sqrt()

    assert d.loss(oracle, c.expand(64, 2), g).item() < 1e-8
    model = ImageDDPM(UNet(1, 8, (1, 2)), side=14, T=20)
    assert model.loss(torch.rand(4, 1, 28, 28), g).shape == ()
    x = model.sample(3, g, steps=5)
    assert x.shape == (3, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError, match="side"):
        ImageDDPM(UNet(1, 8), side=20)


def test_ddpm_learns_a_gaussian_mean():
    """A few hundred steps on N(3, 0.5^2) in 1-D: samples land near the right mean and spread."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = DDPM(TimeMLP(1, 32, 1), T=50)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    data = 3 + 0.5 * torch.randn(2000, 1, generator=g)
    for _ in range(250):
        loss = model.loss(data[torch.randint(0, 2000, (128,), generator=g)], g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = model.diffusion.sample(model, (2000, 1), g)
    assert abs(x.mean() - 3) < 0.2 and abs(x.std() - 0.5) < 0.2
