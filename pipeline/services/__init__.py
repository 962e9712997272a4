"""Services: the loops and long jobs (the streaming rater, offline rating, re-rating, ingest)."""
