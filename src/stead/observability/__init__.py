"""What operators see of a running server: request ids in logs."""
