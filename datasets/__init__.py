"""Builder CLIs turning raw datasets into the original release's TFRecords."""
