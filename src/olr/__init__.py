"""Occlusion-based Latent Representations (OLR): one embedding vector per label per image.

Method: Karatsiolis and Kamilaris, "Converting Image Labels to Meaningful and Information-rich
Embeddings", ICPRAM 2021.
"""

__version__ = "0.1.0"
