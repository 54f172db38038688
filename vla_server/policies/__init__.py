"""Policy backends: the `Policy` interface (base) and the models that are real here."""
