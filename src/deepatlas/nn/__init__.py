"""Shared from-scratch building blocks: activations, initialisation, losses, norms, regularisation, metrics, compression."""
