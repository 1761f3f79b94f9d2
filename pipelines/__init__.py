"""tailcast pipelines package."""
