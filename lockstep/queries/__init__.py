"""Read side: SQL pushed down, DataFrames returned; nothing here commits."""
