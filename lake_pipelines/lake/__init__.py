"""The engine: plain functions over Arrow and object stores. Nothing here imports dagster."""
