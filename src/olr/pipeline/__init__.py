"""The staged ``olr run`` pipeline: each stage writes into the run folder, skipped when done."""
