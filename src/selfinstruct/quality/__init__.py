"""Quality checks of generated data: a model judge's answers, label consistency, decontamination."""
