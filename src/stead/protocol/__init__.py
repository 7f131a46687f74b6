"""The thread streaming protocol: its events and their filters, shared by workers and the API."""
