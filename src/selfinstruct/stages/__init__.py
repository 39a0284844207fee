"""The four Self-Instruct stages: bootstrap, classify, instances, prepare."""
