"""Bayesian deep learning: Bayesian linear regression and networks, Gaussian processes, SWAG, SGLD, Laplace, MCMC."""
