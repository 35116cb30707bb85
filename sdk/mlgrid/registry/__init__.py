"""The model registry on the client side."""
