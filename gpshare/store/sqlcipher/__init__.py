"""The embedded engine: SQLCipher in the vault folder (DESIGN §10.2).

Only gpshare.store imports this package (an import-linter contract); the services reach it
through the storage port (gpshare.store.port) and gpshare.store.open_store.
"""
