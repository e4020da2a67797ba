"""The Arrow Flight wing: bulk governed reads over gRPC, beside the HTTP API.

``GetFlightInfo`` decides a read and hands back a signed, short-lived ticket;
``DoGet`` redeems it through the same chokepoint as ``POST /v1/datasets/{name}/query``.
"""

from gateway.flight.server import FlightEndpoint, start_flight

__all__ = ["FlightEndpoint", "start_flight"]
