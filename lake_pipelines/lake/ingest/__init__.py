"""Landed files → validated Arrow batches: readers, coercion, validation, quarantine."""
