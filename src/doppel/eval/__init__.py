"""Quality metrics of a swap (`doppel eval`): identity, expression and pose, steadiness, seams."""
