"""Faust agents of the price processor, one module each."""
