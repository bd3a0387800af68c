// Package awsiot holds AWS IoT Core's message broker quotas in one place, for the
// client (transport's defaults), the local server (localiot's limits) and the shadow
// rules (shadowstate) to agree on. The values are AWS's published quotas for the
// message broker and the protocols:
// https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits
// and https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html.
package awsiot

import "time"

// Per-connection quotas of AWS IoT Core's message broker.
const (
	// MaxPublishesPerSecond is how many publishes per second one connection may
	// carry, inbound and outbound together.
	MaxPublishesPerSecond = 100
	// MaxSubscriptionsPerConnection is how many topic filters one connection may hold.
	MaxSubscriptionsPerConnection = 50
	// MaxFiltersPerSubscribe is how many topic filters one SUBSCRIBE may carry.
	MaxFiltersPerSubscribe = 8
	// MaxPayloadBytes is the largest PUBLISH payload the broker accepts.
	MaxPayloadBytes = 128 * 1024
	// MaxClientIDBytes is the longest MQTT client ID the broker accepts.
	MaxClientIDBytes = 128
	// MaxTopicBytes is the longest topic name or filter, in UTF-8 bytes.
	MaxTopicBytes = 256
	// MaxTopicSlashes is how many forward slashes a topic or filter may hold (eight
	// levels); a $share/{group}/ prefix and Basic Ingest's $aws/rules/{rule}/ prefix
	// do not count.
	MaxTopicSlashes = 7
	// MinKeepAliveSeconds and MaxKeepAliveSeconds bound the MQTT keep-alive; the
	// broker adjusts a CONNECT outside them (zero, "none", gets the maximum).
	MinKeepAliveSeconds = 30
	MaxKeepAliveSeconds = 1200
	// MaxWebSocketConnectionAge is how long a MQTT-over-WebSocket connection may
	// last before the broker closes it.
	MaxWebSocketConnectionAge = 24 * time.Hour
)
