"""Compiled kernels (Cython). Nothing here is public API; see fastmlp.MLP."""
