"""Executing runs: the queue loop that claims them and the executor that runs the graph."""
