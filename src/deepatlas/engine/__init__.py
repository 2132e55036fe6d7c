"""The plumbing around a lab's own training loop: devices, progress, logging, artifacts."""
