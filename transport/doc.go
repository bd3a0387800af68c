// Package transport is the one MQTT connection shadowsync uses to talk to AWS IoT:
// TLS with X.509 mutual auth, MQTT over WebSocket with SigV4, automatic reconnect with
// progressive backoff, an offline publish queue, and a topic router that serves both
// shadow traffic and the user's own publish/subscribe.
package transport
