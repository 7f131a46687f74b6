"""What a route asks for. Services hold the rules; storage and the broker hold the data."""
