"""Fundamentals: the neuron, the perceptron, the MLP and the blocks every network is built from."""
