"""The bottom floor: models and migrations, the database, vectors, embeddings, search and importers."""
