"""The bottom layer both the service and training stand on: settings, the model artifact, forecast and
risk math, shared thresholds and names. It imports neither ``service`` nor ``training`` (a test walks
the imports)."""
