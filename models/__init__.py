"""Networks and the rules that turn their scores into ranked time windows. Imports nothing else of ours."""
