"""tailcast training package."""
