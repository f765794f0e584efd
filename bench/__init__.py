"""tickwire's benchmark (``make bench``): the pipeline and the seeds' direct design, side by side.

``python -m bench`` starts each design on the embedded stack, drives the local Alpaca feed through a
series of rates and bursts, and writes ``bench/results/`` (Markdown, JSON, a PNG). See docs/performance.md.
"""
