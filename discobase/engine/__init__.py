"""The storage engine: table state, group-commit writers, indexes, catalog, snapshots."""
