"""The SQL layer of the SQL stores: dialects (one module per database) and their statements."""
