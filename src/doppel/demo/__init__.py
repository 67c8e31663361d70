"""Built-in demo material, generated from public-domain images that installed packages ship."""
