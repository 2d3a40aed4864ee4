"""Tools for development, tests and the demo: a local Kafka broker, simulated traffic,
the end-to-end demo. Production serving never imports these."""
