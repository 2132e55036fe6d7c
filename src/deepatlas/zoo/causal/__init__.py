"""Causal models: Bayesian networks, structural causal models, interventions, counterfactuals and structure learning."""
