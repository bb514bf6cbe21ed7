"""Twin's composition root: settings, the CLI and the app that wires the floors below together."""
