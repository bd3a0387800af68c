package reconciler

import (
	"context"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// Echo registers a controller that mirrors each thing's desired state into its
// reported state, whatever its shape: the ThingShadowEcho sample of the AWS IoT Device
// SDK for Python v1 in one line. It reports only the keys that differ, so state the
// device reports on its own is left alone, and works on up to 16 shadows at once.
func Echo(m *Manager, things ...string) (*Controller[shadowstate.Object], error) {
	return Register(m, ControllerOptions{Name: "echo", Things: things, MaxConcurrentReconciles: 16}, ReconcilerFunc[shadowstate.Object](echo))
}

func echo(_ context.Context, req Request[shadowstate.Object]) (Result, error) {
	*req.Reported = req.Desired // desired merged onto reported: unchanged keys are not written
	return Result{}, nil
}
