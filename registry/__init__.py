"""tailcast registry package."""
