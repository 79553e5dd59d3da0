"""Platform feeds: Traccar's forwarders and Watchline's own report JSON, over HTTP or AMQP."""
