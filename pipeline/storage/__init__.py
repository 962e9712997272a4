"""Storage: the SQL, the schema and its migrations, and what is read from call history."""
