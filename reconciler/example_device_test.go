package reconciler_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// Fan is a device type: the state of a fan, as both sections of its shadow hold it.
// An app desires Speed; the device reports Speed and On. The jsonschema tags bound
// what may be desired: desired state outside them never reaches Reconcile.
type Fan struct {
	Speed int  `json:"speed" jsonschema:"minimum=0,maximum=3"`
	On    bool `json:"on,omitempty"`
}

// A device type of your own: a struct, a Reconcile function, a manager that owns the
// connection. This is the program of docs/getting-started.md, "Your own device type".
func Example() {
	endpoint, stopLocalIoT := localIoT() // or your AWS IoT endpoint: mqtts://xxx-ats.iot.<region>.amazonaws.com
	defer stopLocalIoT()
	ctx := context.Background()

	mgr, err := reconciler.NewManager(transport.Config{Endpoint: endpoint, ClientID: "fan-1"}, reconciler.Options{})
	if err != nil {
		panic(err)
	}
	_, err = reconciler.Register(mgr, reconciler.ControllerOptions{Things: []string{"fan-1"}},
		reconciler.ReconcilerFunc[Fan](func(ctx context.Context, req reconciler.Request[Fan]) (reconciler.Result, error) {
			// Drive the hardware towards req.Desired here, then say what it is now.
			req.Reported.Speed = req.Desired.Speed
			req.Reported.On = req.Desired.Speed > 0
			return reconciler.Result{}, nil
		}))
	if err != nil {
		panic(err)
	}
	stopManager := startManager(mgr) // go mgr.Start(ctx), then wait until online
	defer stopManager()

	// An app desires speed 2; the framework calls Reconcile and reports its result.
	fan, disconnect := appShadow(ctx, endpoint, "fan-1")
	defer disconnect()
	if _, err := fan.UpdateDesired(ctx, map[string]any{"speed": 2}); err != nil {
		panic(err)
	}
	doc := waitFor(ctx, fan, inSync)
	fmt.Println("reported", jsonText(doc.State.Reported))
	// Output: reported {"on":true,"speed":2}
}

// The retry contract: an error retries with per-shadow backoff (100 ms, 200 ms, ...);
// the shadow is reported once Reconcile succeeds.
func ExampleReconciler_retry() {
	endpoint, stopLocalIoT := localIoT()
	defer stopLocalIoT()
	ctx := context.Background()
	mgr, err := reconciler.NewManager(transport.Config{Endpoint: endpoint}, reconciler.Options{})
	if err != nil {
		panic(err)
	}
	var attempts atomic.Int32
	_, err = reconciler.Register(mgr, reconciler.ControllerOptions{Things: []string{"fan-1"}},
		reconciler.ReconcilerFunc[Fan](func(ctx context.Context, req reconciler.Request[Fan]) (reconciler.Result, error) {
			if attempts.Add(1) < 3 {
				return reconciler.Result{}, errors.New("motor controller busy") // retried with backoff
			}
			req.Reported.Speed = req.Desired.Speed
			return reconciler.Result{}, nil
		}))
	if err != nil {
		panic(err)
	}
	defer startManager(mgr)()

	fan, disconnect := appShadow(ctx, endpoint, "fan-1")
	defer disconnect()
	if _, err := fan.UpdateDesired(ctx, map[string]any{"speed": 1}); err != nil {
		panic(err)
	}
	doc := waitFor(ctx, fan, inSync)
	fmt.Println("reported", jsonText(doc.State.Reported), "after", attempts.Load(), "attempts")
	// Output: reported {"on":false,"speed":1} after 3 attempts
}

// TerminalError gives up until desired state changes. With StatusField the outcome
// of each reconcile is reported, so that an app can tell "refused" from "not yet".
func ExampleTerminalError() {
	endpoint, stopLocalIoT := localIoT()
	defer stopLocalIoT()
	ctx := context.Background()
	mgr, err := reconciler.NewManager(transport.Config{Endpoint: endpoint}, reconciler.Options{})
	if err != nil {
		panic(err)
	}
	_, err = reconciler.Register(mgr, reconciler.ControllerOptions{Things: []string{"fan-1"}, StatusField: "status"},
		reconciler.ReconcilerFunc[Fan](func(ctx context.Context, req reconciler.Request[Fan]) (reconciler.Result, error) {
			if req.Desired.Speed == 3 {
				return reconciler.Result{}, reconciler.TerminalError(errors.New("speed 3 needs the 230 V model"))
			}
			req.Reported.Speed = req.Desired.Speed
			return reconciler.Result{}, nil
		}))
	if err != nil {
		panic(err)
	}
	defer startManager(mgr)()

	fan, disconnect := appShadow(ctx, endpoint, "fan-1")
	defer disconnect()
	acc, err := fan.UpdateDesired(ctx, map[string]any{"speed": 3})
	if err != nil {
		panic(err)
	}
	doc := waitFor(ctx, fan, func(d *shadowstate.Document) bool { return observed(d) == acc.Version })
	fmt.Println("status", jsonText(doc.State.Reported["status"]))
	// Output: status {"error":"speed 3 needs the 230 V model","observedVersion":1,"ok":false}
}

// Desired state that fails the device type's schema never reaches Reconcile; the
// status names the field and the reason.
func ExampleControllerOptions_statusField() {
	endpoint, stopLocalIoT := localIoT()
	defer stopLocalIoT()
	ctx := context.Background()
	mgr, err := reconciler.NewManager(transport.Config{Endpoint: endpoint}, reconciler.Options{})
	if err != nil {
		panic(err)
	}
	_, err = reconciler.Register(mgr, reconciler.ControllerOptions{Things: []string{"fan-1"}, StatusField: "status"},
		reconciler.ReconcilerFunc[Fan](func(ctx context.Context, req reconciler.Request[Fan]) (reconciler.Result, error) {
			req.Reported.Speed = req.Desired.Speed
			return reconciler.Result{}, nil
		}))
	if err != nil {
		panic(err)
	}
	defer startManager(mgr)()

	fan, disconnect := appShadow(ctx, endpoint, "fan-1")
	defer disconnect()
	acc, err := fan.UpdateDesired(ctx, map[string]any{"speed": 5})
	if err != nil {
		panic(err)
	}
	doc := waitFor(ctx, fan, func(d *shadowstate.Document) bool { return observed(d) == acc.Version })
	fmt.Println("status", jsonText(doc.State.Reported["status"]))
	// Output: status {"error":"invalid desired state: does not match Fan: /speed: maximum: got 5, want 3","observedVersion":1,"ok":false}
}

// observed returns the desired version the controller's status says it handled.
func observed(doc *shadowstate.Document) int64 {
	status, _ := doc.State.Reported["status"].(shadowstate.Object)
	var v int64
	_, _ = fmt.Sscan(fmt.Sprint(status["observedVersion"]), &v)
	return v
}

// Light is a device type where every zero value matters: a light can be off, at
// brightness 0, with no colour set.
type Light struct {
	On         bool   `json:"on"`
	Brightness int    `json:"brightness" jsonschema:"minimum=0,maximum=100"`
	Color      string `json:"color"`
}

// A partial desired state: an app desires only the brightness. Desired holds the
// state the light should be in — the brightness the app desires, and for the other
// fields what the light last reported — so a Reconcile that applies it whole leaves
// the light on and warm. RawDesired says what the app actually named.
func ExampleRequest() {
	endpoint, stopLocalIoT := localIoT()
	defer stopLocalIoT()
	ctx := context.Background()

	mgr, err := reconciler.NewManager(transport.Config{Endpoint: endpoint, ClientID: "lamp-1"}, reconciler.Options{})
	if err != nil {
		panic(err)
	}
	lights, err := reconciler.Register(mgr, reconciler.ControllerOptions{Things: []string{"lamp-1"}},
		reconciler.ReconcilerFunc[Light](func(ctx context.Context, req reconciler.Request[Light]) (reconciler.Result, error) {
			fmt.Printf("Reconcile: desired %+v, apps named %s\n", req.Desired, jsonText(req.RawDesired))
			// hardware.Apply(req.Desired) would go here.
			*req.Reported = req.Desired
			return reconciler.Result{}, nil
		}))
	if err != nil {
		panic(err)
	}
	stopManager := startManager(mgr)
	defer stopManager()
	// The light says what it is when it starts: on, at 30, warm.
	if err := lights.Report(ctx, "lamp-1", func(l *Light) { *l = Light{On: true, Brightness: 30, Color: "warm"} }); err != nil {
		panic(err)
	}

	lamp, disconnect := appShadow(ctx, endpoint, "lamp-1")
	defer disconnect()
	if _, err := lamp.UpdateDesired(ctx, map[string]any{"brightness": 60}); err != nil {
		panic(err)
	}
	doc := waitFor(ctx, lamp, inSync)
	fmt.Println("reported", jsonText(doc.State.Reported))
	// Output:
	// Reconcile: desired {On:true Brightness:60 Color:warm}, apps named {"brightness":60}
	// reported {"brightness":60,"color":"warm","on":true}
}

// Zero values are state: desiring the light off at brightness 0 reports exactly
// that, so the delta clears (a write-back that skipped zero values would leave it
// standing for ever).
func ExampleRequest_zeroValues() {
	endpoint, stopLocalIoT := localIoT()
	defer stopLocalIoT()
	ctx := context.Background()

	mgr, err := reconciler.NewManager(transport.Config{Endpoint: endpoint, ClientID: "lamp-2"}, reconciler.Options{})
	if err != nil {
		panic(err)
	}
	_, err = reconciler.Register(mgr, reconciler.ControllerOptions{Things: []string{"lamp-2"}},
		reconciler.ReconcilerFunc[Light](func(ctx context.Context, req reconciler.Request[Light]) (reconciler.Result, error) {
			*req.Reported = req.Desired
			return reconciler.Result{}, nil
		}))
	if err != nil {
		panic(err)
	}
	stopManager := startManager(mgr)
	defer stopManager()

	lamp, disconnect := appShadow(ctx, endpoint, "lamp-2")
	defer disconnect()
	if _, err := lamp.UpdateDesired(ctx, map[string]any{"on": false, "brightness": 0}); err != nil {
		panic(err)
	}
	doc := waitFor(ctx, lamp, inSync)
	fmt.Println("reported", jsonText(doc.State.Reported))
	// Output: reported {"brightness":0,"color":"","on":false}
}
