"""Meta-learning: MAML, Reptile, prototypical networks, hypernetworks, PFNs, amortised inference, DeepSets."""
