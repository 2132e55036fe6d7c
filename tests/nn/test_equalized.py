"""Equalised layers: values and gradients against plain torch layers holding the scaled weights (float64)."""

import math

import pytest
import torch

from deepatlas.nn.equalized import EqualizedConv2d, EqualizedLinear


@pytest.mark.parametrize("gain", [math.sqrt(2), 1.0])
@pytest.mark.parametrize("lr_mul", [1.0, 0.01])
def test_equalized_linear_is_a_linear_layer_with_scaled_weights(gain, lr_mul):
    """Values equal nn.Linear holding W gain lr_mul / sqrt(fan_in) and bias lr_mul b; the gradients reaching the
    stored parameters are the reference's times the run-time constants."""
    eq = EqualizedLinear(400, 300, gain=gain, lr_mul=lr_mul, bias_init=0.5,
                         generator=torch.Generator().manual_seed(1)).double()
    # stored weights N(0, 1 / lr_mul^2), so that the effective weights are He-scaled whatever lr_mul
    assert abs(eq.weight.std().item() * lr_mul - 1) < 0.01 and abs(eq.weight.mean().item() * lr_mul) < 0.01
    scale = gain * lr_mul / math.sqrt(400)
    ref = torch.nn.Linear(400, 300).double()
    with torch.no_grad():
        ref.weight.copy_(eq.weight * scale)
        ref.bias.copy_(eq.bias * lr_mul)
    torch.testing.assert_close(ref.bias, torch.full((300,), 0.5, dtype=torch.float64))  # bias_init, effective
    x = torch.randn(5, 400, dtype=torch.float64)
    y, y_ref = eq(x), ref(x)
    torch.testing.assert_close(y, y_ref)
    y.square().sum().backward()
    y_ref.square().sum().backward()
    # dL/dW = dL/d\hat W * c: with lr_mul < 1 the stored weights learn lr_mul times slower
    torch.testing.assert_close(eq.weight.grad, ref.weight.grad * scale)
    torch.testing.assert_close(eq.bias.grad, ref.bias.grad * lr_mul)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k", [1, 3])
def test_equalized_conv_is_a_conv_layer_with_scaled_weights(stride, k):
    eq = EqualizedConv2d(3, 4, k, stride=stride, gain=1.0, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        eq.bias.normal_()
    ref = torch.nn.Conv2d(3, 4, k, stride=stride, padding=k // 2).double()
    with torch.no_grad():
        ref.weight.copy_(eq.weight / math.sqrt(3 * k * k))
        ref.bias.copy_(eq.bias)
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    y, y_ref = eq(x), ref(x)
    assert y.shape == (2, 4, 7 if stride == 1 else 4, 7 if stride == 1 else 4)
    torch.testing.assert_close(y, y_ref)
    y.sin().sum().backward()
    y_ref.sin().sum().backward()
    torch.testing.assert_close(eq.weight.grad, ref.weight.grad / math.sqrt(3 * k * k))
    torch.testing.assert_close(eq.bias.grad, ref.bias.grad)


def test_default_gain_is_he_for_a_relu_that_follows():
    """gain sqrt(2): the effective weights have variance 2 / fan_in, He's constant."""
    conv = EqualizedConv2d(16, 64, 3, generator=torch.Generator().manual_seed(0))
    assert (conv.weight * conv.scale).var().item() == pytest.approx(2 / (16 * 9), rel=0.05)


def test_the_same_generator_gives_the_same_weights():
    a = EqualizedLinear(8, 4, generator=torch.Generator().manual_seed(3))
    b = EqualizedLinear(8, 4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.weight, b.weight)


def test_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        EqualizedConv2d(3, 4, 2)
    with pytest.raises(ValueError, match="stride"):
        EqualizedConv2d(3, 4, 3, stride=0)
    with pytest.raises(ValueError, match="lr_mul"):
        EqualizedLinear(3, 4, lr_mul=0.0)
