"""``make bench``: Konak measured the way its users feel it (timings live here, not in tests)."""
