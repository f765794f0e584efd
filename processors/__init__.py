"""Stream processors: the price stage (quotes -> prices, marks, Redis) and the P&L stage (positions x marks -> P&L)."""
