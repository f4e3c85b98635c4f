"""Monitoring rules: threshold evaluation with breach episodes, recommendations, due monitors."""
