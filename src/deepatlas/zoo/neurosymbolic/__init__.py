"""Neuro-symbolic models: probabilistic logic, DeepProbLog, logic tensor networks, theorem provers, deep CRFs."""
