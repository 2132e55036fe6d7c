"""From-scratch optimisers, learning-rate schedules and gradient utilities."""
