"""A new venue, by example: copy this package to brokers/<name>/ and fill in the stubs.

What a venue writes (each file small, each with its own tests):

    settings.py   frozen pydantic-settings with the venue's own env prefix (<NAME>_...);
                  secrets typed SecretStr (never logged, never in describe())
    mapping.py    pure translation: OrderRequest -> the venue's request body, the venue's
                  order / fill / account / position objects -> the port's value types
                  (OrderReport with `leg` and `parent_client_order_id` for bracket exits:
                  legs are known by the port's `leg`, never by an id suffix)
    errors.py     the venue's codes / HTTP statuses -> brokers.exceptions: transient
                  (TransientBrokerError: retry) or permanent (OrderRejected,
                  DuplicateClientOrderId, UnknownOrder, NotCancellable), the code kept
    service.py    the OrderService (brokers/port.py) over the venue's real client library:
                  every call under a deadline, placement idempotent by client order id
                  (look the id up before any re-placement), streamed updates plus polling;
                  `instrument(symbol)` returns what the venue publishes (None: nothing)
    plugin.py     PLUGIN = VenuePlugin(name, settings, build, describe, ...)

and, to run without a real account, a simulator front door that speaks the venue's
protocol over the shared core (brokers/sim/<name>/; the core refuses with neutral
brokers.sim.reasons.Reason values, the door maps each one to the venue's wire code and
text), exposed as PLUGIN.simulator_door + PLUGIN.simulated.

Then one line in brokers/registry.py VENUES: `"<name>": "brokers.<name>.plugin:PLUGIN"`,
and tests/contract/test_contract_<name>.py: subclass tests.contract.contract's
OrderServiceContract with a `service` fixture connected to the simulator's door for the
venue, and `venue_codes` (Reason -> the code the adapter reports). Nothing else in the
project names a venue. This package is not registered; it only has to import and
type-check.
"""
