"""tailcast serving package."""
