"""Lightning modules and trainer construction for every trained stage."""
