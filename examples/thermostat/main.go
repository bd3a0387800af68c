// Thermostat is shadowsync's first example: a typed device, a Reconcile function, and
// the framework keeping the shadow's reported state moving towards its desired state.
//
// An app desires a target temperature and a mode (off, heat or cool); the device
// reports its temperature, mode and whether its heater (or cooler) is on. Reconcile
// moves the simulated temperature half a degree at a time and asks to run again
// shortly (RequeueAfter) until the target is reached.
//
// With no flags it starts localiot in-process, sets a desired temperature as an app
// would, prints every step until the device has converged, and exits:
//
//	go run ./examples/thermostat
//
// Against AWS IoT (or `shadowsync serve`), it runs until interrupted, reconciling
// whatever an app desires for the thing:
//
//	go run ./examples/thermostat --endpoint mqtts://XXXX-ats.iot.eu-west-1.amazonaws.com:8883 \
//	    --ca AmazonRootCA1.pem --cert device.pem.crt --key private.pem.key --thing my-thermostat
package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/schemas"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/transport"
)

//go:generate go run . --write-schema ../../schemas/thermostat.json

// Thermostat is the device's state. An app desires Target and Mode; the device reports
// all four fields. The jsonschema tags bound what may be desired.
type Thermostat struct {
	Target float64 `json:"target" jsonschema:"minimum=5,maximum=30,description=target temperature in degrees Celsius"`
	Mode   string  `json:"mode" jsonschema:"enum=off,enum=heat,enum=cool"`
	Temp   float64 `json:"temp,omitempty" jsonschema:"description=measured temperature in degrees Celsius (reported)"`
	Active bool    `json:"active,omitempty" jsonschema:"description=heater or cooler running (reported)"`
}

// device simulates the hardware: a room whose temperature the thermostat changes by
// step degrees per reconcile.
type device struct {
	mu    sync.Mutex
	temp  map[string]float64
	step  float64
	every time.Duration
	out   *cmdkit.Printer
	done  chan string // receives a thing's name each time it reaches its target
}

// Reconcile drives one thermostat towards its desired state, one step at a time.
func (d *device) Reconcile(ctx context.Context, req reconciler.Request[Thermostat]) (reconciler.Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	temp, ok := d.temp[req.Thing]
	if !ok {
		temp = 20 // the room's temperature when the program starts
	}
	want := req.Desired
	before := temp
	switch {
	case want.Mode == "heat" && temp < want.Target:
		temp = min(temp+d.step, want.Target)
	case want.Mode == "cool" && temp > want.Target:
		temp = max(temp-d.step, want.Target)
	}
	d.temp[req.Thing] = temp
	busy := want.Mode == "heat" && temp < want.Target || want.Mode == "cool" && temp > want.Target

	*req.Reported = Thermostat{Target: want.Target, Mode: want.Mode, Temp: temp, Active: busy}
	if temp != before {
		d.out.Printf("%s: %.1f°C -> %.1f°C (target %.1f°C, %s)", req.Thing, before, temp, want.Target, want.Mode)
	}
	if busy {
		return reconciler.Result{RequeueAfter: d.every}, nil
	}
	if want.Mode != "" {
		d.out.Printf("%s: at %.1f°C, %s idle", req.Thing, temp, want.Mode)
		select {
		case d.done <- req.Thing:
		default:
		}
	}
	return reconciler.Result{}, nil
}

func main() { cmdkit.Main(run) }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("thermostat", flag.ContinueOnError)
	fs.SetOutput(stdout)
	conn := cmdkit.RegisterFlags(fs, "thermostat-1")
	target := fs.Float64("set-target", 0, "act as an app once: desire this temperature, with --set-mode (default 22.5 against the embedded localiot, none with --endpoint)")
	mode := fs.String("set-mode", "heat", "mode to desire with --set-target: heat, cool or off")
	every := fs.Duration("step-every", 200*time.Millisecond, "how often the simulated device changes its temperature by half a degree")
	schemaFile := fs.String("write-schema", "", "write the JSON Schema of the device state to `FILE` and exit (go generate uses it)")
	if err := cmdkit.Parse(fs, args); err != nil {
		return err
	}
	if *schemaFile != "" {
		return schemas.WriteFile[Thermostat](*schemaFile, schemas.Options{})
	}
	out := cmdkit.NewPrinter(stdout)
	tgt, err := cmdkit.Open(ctx, conn, cmdkit.Options{Listener: cmdkit.Plain})
	if err != nil {
		return err
	}
	defer tgt.Close()
	if tgt.Local && *target == 0 {
		*target = 22.5
	}

	// Warnings and errors (a refused desired state, a lost connection) go to stderr.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	mgr, err := reconciler.NewManager(tgt.Config("thermostat"), reconciler.Options{Logger: logger})
	if err != nil {
		return err
	}
	dev := &device{temp: map[string]float64{}, step: 0.5, every: *every, out: out, done: make(chan string, 1)}
	if _, err := reconciler.Register(mgr, reconciler.ControllerOptions{Things: []string{conn.Thing}}, dev); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()
	if err := mgr.Conn().AwaitConnection(ctx); err != nil {
		cancel()
		<-stopped // the manager stops before the deferred tgt.Close stops the broker
		return err
	}
	out.Printf("thermostat %s connected to %s", conn.Thing, tgt.Endpoint)

	if *target != 0 {
		if err := desire(ctx, tgt.Config("thermostat-app"), conn.Thing, *target, *mode); err != nil {
			cancel()
			<-stopped
			return err
		}
		out.Printf("app: desired %.1f°C, %s", *target, *mode)
	}
	if tgt.Local {
		select { // the embedded run ends once the device has converged
		case <-dev.done:
			out.Printf("converged")
		case <-time.After(30 * time.Second):
			out.Printf("did not converge within 30s")
		case <-ctx.Done():
		}
		cancel()
	}
	return <-stopped
}

// desire sets the thermostat's desired state as an app would: over a connection and
// a shadow client of its own.
func desire(ctx context.Context, cfg transport.Config, thing string, target float64, mode string) error {
	conn, err := transport.Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	client, err := shadowclient.New(conn, shadowclient.Options{})
	if err != nil {
		return err
	}
	defer client.Close(context.WithoutCancel(ctx))
	h, err := client.Shadow(thing, "")
	if err != nil {
		return err
	}
	_, err = h.UpdateDesired(ctx, map[string]any{"target": target, "mode": mode})
	return err
}
