"""Spec profiles and the pure verdict functions that judge a snapshot against them."""
