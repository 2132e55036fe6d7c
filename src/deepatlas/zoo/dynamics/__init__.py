"""Continuous-time and physics: Neural ODE/SDE, PINN, neural operators, Hamiltonian and Lagrangian networks."""
