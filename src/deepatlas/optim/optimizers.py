"""Gradient-descent optimisers written out: SGD (momentum, Nesterov), AdaGrad, RMSProp, Adam, AdamW.

Each optimiser turns a gradient g_t into a step. SGD scales it by one learning rate; momentum
averages it over time; AdaGrad, RMSProp and Adam divide each coordinate by a running estimate
of its gradient scale, so every parameter gets its own step size. torch.optim.Optimizer is
used only for its param-group and state plumbing: the update of every method is below.

    SGD       w \\leftarrow w - \\eta g
    AdaGrad   r \\leftarrow r + g^2,                w \\leftarrow w - \\eta g / (\\sqrt{r} + \\epsilon)
    RMSProp   v \\leftarrow \\beta v + (1-\\beta) g^2,  w \\leftarrow w - \\eta g / (\\sqrt{v} + \\epsilon)
    Adam      w \\leftarrow w - \\eta \\hat m / (\\sqrt{\\hat v} + \\epsilon)

Robbins & Monro 1951; Polyak 1964; Nesterov 1983, in the form of Sutskever et al. ICML 2013;
Duchi, Hazan & Singer, JMLR 2011; Tieleman & Hinton, Coursera lecture 6.5, 2012;
Kingma & Ba, "Adam", ICLR 2015 (arXiv 1412.6980); Reddi et al., "On the convergence of Adam
and beyond", ICLR 2018 (AMSGrad); Loshchilov & Hutter, "Decoupled weight decay
regularization", ICLR 2019 (arXiv 1711.05101).
"""

from __future__ import annotations

import torch


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


class _Optimizer(torch.optim.Optimizer):
    """Loops over the parameters that have a gradient and hands each to `update`.

    `lr` is a float, or a tensor that broadcasts against the parameters: a (G, 1) rate on a
    (G, d) parameter trains G independent rows at G rates at once, a learning-rate sweep in
    one run (every update below is element-wise).
    """

    def __init__(self, params, defaults: dict):
        lr = defaults["lr"]
        _check(bool((torch.as_tensor(lr) >= 0).all()), f"learning rate must be >= 0, got {lr}")
        _check(defaults.get("weight_decay", 0.0) >= 0,
               f"weight_decay must be >= 0, got {defaults.get('weight_decay')}")
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                if w.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                self.update(w, w.grad, self.state[w], group)
        return loss

    def update(self, w: torch.Tensor, g: torch.Tensor, state: dict, group: dict) -> None:
        """One parameter's update rule; every optimiser below writes its own."""
        raise NotImplementedError


class SGD(_Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, dampening and L2 weight decay.

    The velocity follows PyTorch's convention v = mu v + g, w -= lr v; with a constant lr this
    is the textbook v = mu v + lr g, w -= v. Nesterov uses Sutskever's rewrite of the look-ahead
    gradient: w -= lr (g + mu v).
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        _check(momentum >= 0, f"momentum must be >= 0, got {momentum}")
        _check(0 <= dampening <= 1, f"dampening must be in [0, 1], got {dampening}")
        _check(not nesterov or (momentum > 0 and dampening == 0),
               "Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def update(self, w, g, state, group):
        mu, lr = group["momentum"], group["lr"]
        # g \leftarrow g + \lambda w   (L2 penalty folded into the gradient)
        g = g + group["weight_decay"] * w
        if mu > 0:
            if "velocity" not in state:
                state["velocity"] = g.clone()  # v_1 = g_1
            else:
                # v_t = \mu v_{t-1} + (1 - \tau) g_t
                state["velocity"].mul_(mu).add_((1 - group["dampening"]) * g)
            v = state["velocity"]
            # Nesterov: step along g_t + \mu v_t, the gradient seen from the look-ahead point
            g = g + mu * v if group["nesterov"] else v
        # w_{t+1} = w_t - \eta g
        w.sub_(lr * g)


class AdaGrad(_Optimizer):
    """AdaGrad: divide by the root of the running sum of squared gradients (per coordinate)."""

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        _check(lr_decay >= 0, f"lr_decay must be >= 0, got {lr_decay}")
        _check(initial_accumulator_value >= 0,
               f"initial_accumulator_value must be >= 0, got {initial_accumulator_value}")
        _check(eps >= 0, f"eps must be >= 0, got {eps}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def update(self, w, g, state, group):
        if not state:
            state["step"] = 0
            state["sum_sq"] = torch.full_like(w, group["initial_accumulator_value"])
        state["step"] += 1
        g = g + group["weight_decay"] * w
        # \eta_t = \eta / (1 + (t - 1) \cdot \text{lr\_decay})
        lr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        # r_t = r_{t-1} + g_t \odot g_t
        state["sum_sq"].add_(g * g)
        # w_{t+1} = w_t - \eta_t g_t / (\sqrt{r_t} + \epsilon)
        w.sub_(lr * g / (state["sum_sq"].sqrt() + group["eps"]))


class RMSProp(_Optimizer):
    """RMSProp: divide by the root of a moving average of squared gradients.

    `alpha` is the decay beta of the average (PyTorch's name). Centered subtracts the squared
    mean gradient (a variance estimate, Graves 2013); momentum accumulates the scaled steps.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        _check(0 <= alpha <= 1, f"alpha must be in [0, 1], got {alpha}")
        _check(eps >= 0, f"eps must be >= 0, got {eps}")
        _check(momentum >= 0, f"momentum must be >= 0, got {momentum}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def update(self, w, g, state, group):
        beta, mu = group["alpha"], group["momentum"]
        if not state:
            state["square_avg"] = torch.zeros_like(w)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(w)
            if mu > 0:
                state["velocity"] = torch.zeros_like(w)
        g = g + group["weight_decay"] * w
        # v_t = \beta v_{t-1} + (1 - \beta) g_t \odot g_t
        state["square_avg"].mul_(beta).add_((1 - beta) * g * g)
        v = state["square_avg"]
        if group["centered"]:
            # \bar g_t = \beta \bar g_{t-1} + (1 - \beta) g_t;   v_t \leftarrow v_t - \bar g_t^2
            state["grad_avg"].mul_(beta).add_((1 - beta) * g)
            v = v - state["grad_avg"] ** 2
        # \Delta_t = g_t / (\sqrt{v_t} + \epsilon)
        step = g / (v.sqrt() + group["eps"])
        if mu > 0:
            # b_t = \mu b_{t-1} + \Delta_t
            step = state["velocity"].mul_(mu).add_(step)
        # w_{t+1} = w_t - \eta \Delta_t
        w.sub_(group["lr"] * step)


class Adam(_Optimizer):
    """Adam: momentum on g (first moment) divided by the root of a moving average of g^2 (second
    moment), both bias-corrected. `weight_decay` here is an L2 penalty added to g; see AdamW."""

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False):
        _check(all(0 <= b < 1 for b in betas), f"betas must be in [0, 1), got {betas}")
        _check(eps >= 0, f"eps must be >= 0, got {eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def update(self, w, g, state, group):
        (beta1, beta2), lr, lam = group["betas"], group["lr"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(w)
            state["exp_avg_sq"] = torch.zeros_like(w)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(w)
        state["step"] += 1
        t = state["step"]
        if self.decoupled:
            # w \leftarrow w - \eta \lambda w   (decay applied to the weights, not through g)
            w.mul_(1 - lr * lam)
        else:
            g = g + lam * w
        # m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t
        m = state["exp_avg"].mul_(beta1).add_((1 - beta1) * g)
        # v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t \odot g_t
        v = state["exp_avg_sq"].mul_(beta2).add_((1 - beta2) * g * g)
        if group["amsgrad"]:
            # AMSGrad: \tilde v_t = \max(\tilde v_{t-1}, v_t) keeps the step from growing back
            v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        # \hat m_t = m_t / (1 - \beta_1^t),   \hat v_t = v_t / (1 - \beta_2^t)
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        # w_{t+1} = w_t - \eta \hat m_t / (\sqrt{\hat v_t} + \epsilon)
        w.sub_(lr * m_hat / (v_hat.sqrt() + group["eps"]))


class AdamW(Adam):
    """AdamW: Adam whose weight decay shrinks the weights directly, outside the adaptive scaling."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


__all__ = ["SGD", "AdaGrad", "RMSProp", "Adam", "AdamW"]
