"""tailcast feature_store package."""
