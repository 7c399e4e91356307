"""Model definitions: teacher classifier, Siamese embedding model, decoder."""
