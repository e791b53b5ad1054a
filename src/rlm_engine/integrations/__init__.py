"""Clients of outside systems (Delta tables, Jira, ...), one small module each."""
