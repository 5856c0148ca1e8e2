"""Fine-tuning data curation: SFT and preference records cleaned turn by turn with their structure kept."""
