"""Importers: real file formats mapped to completion records."""
