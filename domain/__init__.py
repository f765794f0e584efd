"""The rules of the market-data domain, free of I/O: quote validation, pricing, positions and valuation.

Everything here is a pure function or a small value type over ``schemas``; processors, the API and the
tools apply the same rules by importing them from here.
"""
