"""The Conversational Experience Service: transports, the session and turn loop, the server app, the CLI."""
