"""The read wing: query, view, plan, scan, anonymity, aggregates, encoding, digest."""
