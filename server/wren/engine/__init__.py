"""Pure completion/action logic: no pygls, no torch."""
