"""Iceberg tables: creation, transforms, partition replace, evolution, snapshots, maintenance."""
