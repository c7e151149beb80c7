"""The FastAPI service: built in the service issues."""
