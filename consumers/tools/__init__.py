"""Engineers' tools: follow a topic (``tail``), re-run processors over a range (``replay``), compare (``diff``)."""
