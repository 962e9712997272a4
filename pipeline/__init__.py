"""VMGate call-rating pipeline.

SIP CDRs come in (Kafka or files), are rated against the customer's, the VMGateClient's and the
reseller's rate decks, and land as call history in ClickHouse. The rating core
(:mod:`pipeline.rating`) is pure; sources, sinks and the command line are adapters around it.
"""

__version__ = "0.1.0"
