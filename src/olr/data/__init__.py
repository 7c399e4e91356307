"""Datasets, label tables, the decoded image cache and splits."""
