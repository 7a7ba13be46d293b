"""The search algorithm, free of ComfyUI: noise recipes, the candidate pool, ask/tell strategies and
the potential. Only numpy and torch are imported here."""
