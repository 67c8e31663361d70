"""Video, image and audio I/O. This package is the only place that opens media files."""
