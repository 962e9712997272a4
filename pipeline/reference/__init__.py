"""Reference data (plans, decks, associations, memberships): files, topics, loading, diffs."""
