"""Analyses of the label embeddings: probe, correlations, PCA, disagreements, editing."""
