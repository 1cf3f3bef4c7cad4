"""Lucene matching semantics shared by the query languages."""
