"""datamix."""
