"""Small runnable examples of the pool in applications."""
