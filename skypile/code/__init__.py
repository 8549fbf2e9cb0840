"""GitHub code: language by extension, RedPajama-style file filters, a cap on markup/data files."""
