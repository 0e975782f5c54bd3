"""nimbus services: one package each (handlers + main)."""
