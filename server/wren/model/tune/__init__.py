"""`wren tune`: LoRA adapters trained on the user's own repository.

`data` picks and splits the files (pure Python), `train` runs the LoRA training (peft),
`adapters` finds, checks and merges a trained adapter into the model Wren serves.
"""
