"""Counterfactuals: what this unit's Y would have been had X been x', in three steps on an SCM.

Abduction recovers the unit's exogenous noise from what was observed; action replaces the equation of
X by the constant x'; prediction runs the modified equations on the same noise. With additive noise,
x_i = f_i(pa_i) + u_i, abduction is exact: u_i = x_i - f_i(pa_i). In a linear SCM x = x W + u the
answer has a closed form: every descendant of X moves by (x' - x_j) times the total effect of X on
it, the j-th row of (I - W)^{-1}; with only part of the unit observed, the noise posterior is Gaussian
and so is the counterfactual.

    \\text{abduction: } u = x - f(x),\\quad \\text{action: } X_j := x',\\quad
    \\text{prediction: } x^{cf} = f^{\\mathrm{do}(X_j = x')}(x^{cf}) + u;\\qquad
    \\text{linear: } x^{cf} = x + (x' - x_j)\\,[(I - W)^{-1}]_{j,:}

Pearl, "Causality: Models, Reasoning, and Inference", Cambridge University Press 2000, ch. 7.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from deepatlas.zoo.causal.scm import SCM


def counterfactual(scm: SCM, observed: dict[str, torch.Tensor], intervention: dict[str, float]) -> dict:
    """The three steps for fully observed units (each value a tensor (n,)) of an additive-noise SCM."""
    u = scm.abduct(observed)  # abduction: the noise that reproduces what was seen
    acted = scm.do(**intervention)  # action: cut X's equation, set X := x'
    return acted.solve(u)  # prediction: the same noise through the new equations


def linear_counterfactual(W: torch.Tensor, x: torch.Tensor, j: int, value: float) -> torch.Tensor:
    """Closed form for fully observed units x (n, d) of the linear SCM x = x W + u, under do(X_j = value)."""
    total = torch.linalg.inv(torch.eye(len(W), dtype=W.dtype) - W)  # (d, d) total effects i -> k
    # x^{cf} = x + (x' - x_j)\,[(I - W)^{-1}]_{j,:}
    return x + (value - x[:, j:j + 1]) * total[j]


def linear_gaussian_counterfactual(W: torch.Tensor, noise_var: torch.Tensor, evidence: dict[int, float], j: int,
                                   value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and covariance (d, d) of the counterfactual x under do(X_j = value) for a unit of which
    only `evidence` {index: value} was seen, in x = x W + u with u ~ N(0, diag(noise_var)).

    Abduction is Gaussian conditioning of u on x_E = u T_E with T = (I - W)^{-1}; action and prediction
    are linear: x^cf = u P T' + value e_j T', with P dropping u_j and W' = W without X_j's parents."""
    d = len(W)
    eye = torch.eye(d, dtype=W.dtype)
    T = torch.linalg.inv(eye - W)
    E = list(evidence)
    T_E = T[:, E]  # (d, |E|)
    D = torch.diag(noise_var.to(W.dtype))
    e = torch.tensor([evidence[k] for k in E], dtype=W.dtype)
    gain = D @ T_E @ torch.linalg.inv(T_E.T @ D @ T_E)  # (d, |E|)
    # u \mid x_E = e \;\sim\; \mathcal{N}\big(K e,\; D - K T_E^\top D\big),\quad K = D T_E (T_E^\top D T_E)^{-1}
    mean_u, cov_u = gain @ e, D - gain @ T_E.T @ D
    W_cut = W.clone()
    W_cut[:, j] = 0
    T_cut = torch.linalg.inv(eye - W_cut)
    P = eye.clone()
    P[j, j] = 0
    # x^{cf} = u P T' + x'\, e_j T'
    mean = mean_u @ P @ T_cut + value * T_cut[j]
    cov = T_cut.T @ P @ cov_u @ P @ T_cut
    return mean, cov
