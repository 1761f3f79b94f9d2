"""tailcast drift package."""
