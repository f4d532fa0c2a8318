"""`wren tune`: LoRA adapters trained on the user's own repository.

`data` picks and splits the files (pure Python), `train` runs the LoRA training (peft),
`adapters` finds and checks a trained adapter for the model Wren serves.
"""
