// Package localiot is a local stand-in for AWS IoT: an embedded MQTT broker with plain,
// TLS mutual-auth and SigV4 WebSocket listeners, plus a Device Shadow service that
// follows the rules in package shadowstate.
//
// It lets device code be developed and tested on one machine with no cloud account,
// and any AWS IoT SDK can connect to it.
package localiot
