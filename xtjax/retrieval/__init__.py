"""Sentence retrieval: exact nearest-neighbour search in JAX and BUCC 2018 bitext mining."""
