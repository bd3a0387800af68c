// Package jobsclient is the device side of the AWS IoT Jobs MQTT API over one
// transport connection, next to shadowclient's Device Shadow client: GetPending,
// StartNext, Describe (also of $next) and Update for one thing or many, each
// correlated with its reply by clientToken, with jobstate's wire types as requests
// and replies, and the notify and notify-next events as callbacks.
//
// A rejection by the service is a *jobstate.ErrorResponse, matched with errors.As
// and told apart by its Code (VersionMismatch, TerminalStateReached, ...); a request
// that got no reply fails with ErrRequestTimeout, ErrOffline or ErrReplyLost, as
// shadowclient's do.
//
// It is the layer the reconciler's job handlers (reconciler.RegisterJobs) are built
// on; use it directly for a device that drives its jobs itself, as the AWS IoT Device
// SDK for Python v1's AWSIoTMQTTThingJobsClient does.
package jobsclient
