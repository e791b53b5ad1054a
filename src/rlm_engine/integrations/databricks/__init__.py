"""A Databricks workspace through the official `databricks-sdk` (the `databricks` extra).

One small module per service: `workspace` (the client and its authentication), `volumes`
(files in Unity Catalog volumes), `secrets` (a secret scope, and the redaction of what was
loaded from it), `sql` (a SQL warehouse through the Statement Execution API), `uc_tables`
(the lakehouse tables as Unity Catalog tables over SQL) and `sql_tool` (`execute_sql` as a
host tool of the REPL). The SDK is imported inside the functions that need it, so importing
these modules costs nothing and works without the extra.
"""
