"""Webhook deliveries: signing, the SSRF guard, single attempts and batched sending."""
