// Package lamp is the device of docs/testing.md: a user's own device logic — a
// dimmable lamp and its Reconcile — tested with a Ginkgo suite on shadowtest. Copy the
// three files of this directory to start a suite for your own device.
package lamp

import (
	"context"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/reconciler"
)

// Lamp is the lamp's state: an app desires On and Brightness; the lamp reports what
// it shows. The jsonschema tags bound what may be desired.
type Lamp struct {
	On         bool `json:"on"`
	Brightness int  `json:"brightness" jsonschema:"minimum=0,maximum=100"`
}

// Device drives lamps. Its hardware is simulated: the brightness fades by Step per
// reconcile, every Every, until it reaches the desired level.
type Device struct {
	Step  int
	Every time.Duration

	mu    sync.Mutex
	level map[string]int // each lamp's brightness, as the hardware shows it
}

// Reconcile moves one lamp one step towards its desired state and reports it.
func (d *Device) Reconcile(_ context.Context, req reconciler.Request[Lamp]) (reconciler.Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.level == nil {
		d.level = make(map[string]int)
	}
	level, want := d.level[req.Thing], req.Desired.Brightness
	switch {
	case level < want:
		level = min(level+d.Step, want)
	case level > want:
		level = max(level-d.Step, want)
	}
	d.level[req.Thing] = level
	*req.Reported = Lamp{On: req.Desired.On, Brightness: level}
	if level != want {
		return reconciler.Result{RequeueAfter: d.Every}, nil
	}
	return reconciler.Result{}, nil
}
