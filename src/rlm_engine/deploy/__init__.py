"""Deploying the lakehouse jobs to a Databricks workspace: ``rlm databricks init|deploy|check``.

`bundle` writes a Databricks Asset Bundle (``databricks.yml`` and one resource file per
job) from plain Python data; `deploy` builds the wheel, deploys the bundle with the
``databricks`` CLI, and wires the three jobs to each other through the SDK; `check` says
what a workspace still lacks. The SDK is imported only inside the functions that call it.
"""
