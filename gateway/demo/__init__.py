"""The embedded demo: a workspace with synthetic data, on local files, S3 or PostgreSQL."""
