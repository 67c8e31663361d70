"""Records, errors and the plugin registry shared by every pipeline stage."""
