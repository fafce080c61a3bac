"""Evaluation: the record, a user-like participant, rehearsals, comparisons and recaps."""
