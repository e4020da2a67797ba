"""The HTTP wing: the app factory, the routes, problem responses and streamed bodies."""
