"""Face detection, landmarks, identity embeddings, tracking and the extraction pipeline."""
