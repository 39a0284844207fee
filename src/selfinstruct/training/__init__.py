"""Fine-tuning on generated data: local LoRA training (TRL + PEFT) and checks of data meant
for hosted fine-tuning services."""
