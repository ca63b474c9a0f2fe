"""The fusion GNN: BERT text features and KG embeddings in a PyTorch Geometric model."""
