"""Datasets and DataModules: synthetic probes now; text and speech in their own modules."""
