package reconciler

import (
	"context"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// EchoWorkers is how many shadows Echo reconciles at once. Each reconcile holds its
// worker until the shadow service has confirmed its report, a round trip, so a
// controller reports at most MaxConcurrentReconciles shadows per round trip. Echo's
// reconcile does nothing else, so its throughput is what it keeps in flight
// (shadowsync bench, 1,000 things against mosquitto: 0.72x the bare-paho floor with
// 16 workers, 0.85x with 128, 0.92x with 256, no better with 512). Idle workers cost
// a parked goroutine each. On AWS IoT the connection's publish cap (100 a second, in
// bursts of at most 90) keeps the reports in flight under the 100 unacknowledged
// messages AWS IoT allows a client.
const EchoWorkers = 256

// Echo registers a controller that mirrors each thing's desired state into its
// reported state, whatever its shape: the ThingShadowEcho sample of the AWS IoT Device
// SDK for Python v1 in one line. It reports only the keys that differ, so state the
// device reports on its own is left alone, and works on up to EchoWorkers shadows at
// once.
func Echo(m *Manager, things ...string) (*Controller[shadowstate.Object], error) {
	return Register(m, ControllerOptions{Name: "echo", Things: things, MaxConcurrentReconciles: EchoWorkers}, ReconcilerFunc[shadowstate.Object](echo))
}

func echo(_ context.Context, req Request[shadowstate.Object]) (Result, error) {
	*req.Reported = req.Desired // desired merged onto reported: unchanged keys are not written
	return Result{}, nil
}
