"""One module per CLI command. Each keeps its imports light: torch is imported only by smoke."""
