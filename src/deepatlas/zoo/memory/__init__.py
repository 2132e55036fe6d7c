"""Memory-augmented networks: memory networks, the neural Turing machine, the DNC and MANN."""
