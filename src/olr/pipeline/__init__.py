"""The staged ``olr run`` pipeline: each stage writes into the run folder and is skipped when done."""
