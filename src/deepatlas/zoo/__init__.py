"""The zoo: one architecture per file, its model and its labs. `deepatlas.labs.discover` imports them all."""
