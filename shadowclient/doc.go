// Package shadowclient is a client of the AWS IoT Device Shadow service over MQTT: get,
// update and delete of classic and named shadows, any number of requests in flight on
// one transport connection (correlated by clientToken), delta and documents callbacks
// per shadow, and fleet watches that follow every thing's shadow through wildcard or
// shared subscriptions.
//
// The shadow documents, messages and rules it speaks are package shadowstate's; this
// package owns the network side: which topics are subscribed when, how replies find
// their requests, and what a request returns when the connection goes away.
package shadowclient
