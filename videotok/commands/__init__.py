"""Sub-commands of `videotok` that are not LightningCLI runs (each: `add_parser`, `run`)."""
