"""Brain-inspired models: spiking neural networks."""
