"""AMMFM: asymmetric multi-modal fusion for multi-label skin lesion classification."""
