package reconciler_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/transport"
)

// Echo is the ThingShadowEcho sample of the AWS IoT Device SDK for Python v1 in one
// line: whatever an app desires is reported back.
func ExampleEcho() {
	endpoint, stopLocalIoT := localIoT()
	defer stopLocalIoT()
	ctx := context.Background()
	mgr, err := reconciler.NewManager(transport.Config{Endpoint: endpoint}, reconciler.Options{})
	if err != nil {
		panic(err)
	}
	if _, err := reconciler.Echo(mgr, "lamp-1", "lamp-2"); err != nil {
		panic(err)
	}
	defer startManager(mgr)()

	lamp, disconnect := appShadow(ctx, endpoint, "lamp-2")
	defer disconnect()
	if _, err := lamp.UpdateDesired(ctx, map[string]any{"on": true, "color": map[string]any{"r": 255}}); err != nil {
		panic(err)
	}
	doc := waitFor(ctx, lamp, inSync)
	fmt.Println("reported", jsonText(doc.State.Reported))
	// Output: reported {"color":{"r":255},"on":true}
}

// Controller.Report publishes state that changed on the device by itself, such as a
// sensor reading, through the same path as Reconcile's reports: only the changed
// fields, with the shadow's version, never at the same time as a Reconcile of the
// shadow.
func ExampleController_Report() {
	endpoint, stopLocalIoT := localIoT()
	defer stopLocalIoT()
	ctx := context.Background()
	mgr, err := reconciler.NewManager(transport.Config{Endpoint: endpoint}, reconciler.Options{})
	if err != nil {
		panic(err)
	}
	type Sensor struct {
		Interval int     `json:"interval"` // desired: seconds between readings
		Celsius  float64 `json:"celsius"`  // reported only
		Battery  int     `json:"battery"`  // reported only
	}
	sensors, err := reconciler.Register(mgr, reconciler.ControllerOptions{Things: []string{"sensor-1"}},
		reconciler.ReconcilerFunc[Sensor](func(ctx context.Context, req reconciler.Request[Sensor]) (reconciler.Result, error) {
			req.Reported.Interval = req.Desired.Interval
			return reconciler.Result{}, nil
		}))
	if err != nil {
		panic(err)
	}
	defer startManager(mgr)()

	// A reading arrives from the hardware. Only the fields that changed are reported:
	// interval is still 0, as it was.
	if err := sensors.Report(ctx, "sensor-1", func(s *Sensor) { s.Celsius, s.Battery = 21.5, 97 }); err != nil {
		panic(err)
	}
	sensor, disconnect := appShadow(ctx, endpoint, "sensor-1")
	defer disconnect()
	doc, err := sensor.Get(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("reported", jsonText(doc.State.Reported))
	// Output: reported {"battery":97,"celsius":21.5,"interval":0}
}

// Options.MetricsAddr serves the manager's Prometheus metrics at /metrics while
// Start runs; Manager.Registry holds them for an application that serves its own.
func ExampleOptions_metrics() {
	endpoint, stopLocalIoT := localIoT()
	defer stopLocalIoT()
	ctx := context.Background()
	mgr, err := reconciler.NewManager(transport.Config{Endpoint: endpoint}, reconciler.Options{
		MetricsAddr: "127.0.0.1:0", // e.g. ":9090"; port 0 picks a free one
	})
	if err != nil {
		panic(err)
	}
	if _, err := reconciler.Echo(mgr, "lamp-1"); err != nil {
		panic(err)
	}
	defer startManager(mgr)()

	lamp, disconnect := appShadow(ctx, endpoint, "lamp-1")
	defer disconnect()
	if _, err := lamp.UpdateDesired(ctx, map[string]any{"on": true}); err != nil {
		panic(err)
	}
	waitFor(ctx, lamp, inSync)

	// The lamp is in sync as soon as the report is stored; the manager counts the
	// reconcile a moment later, when the report's reply comes back. Scrape until it has.
	wants := []string{
		`shadowsync_connected{conn="0"}`,
		`shadowsync_reconciles_total{controller="echo",result="success"}`,
		`shadowsync_shadow_requests_total{conn="0",operation="update",outcome="accepted"}`,
	}
	var lines []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if lines = scrape(mgr.MetricsAddr().String(), wants); len(lines) == len(wants) {
			break
		}
	}
	for _, l := range lines {
		fmt.Print(l)
	}
	// Output:
	// shadowsync_connected{conn="0"} 1
	// shadowsync_reconciles_total{controller="echo",result="success"} 1
	// shadowsync_shadow_requests_total{conn="0",operation="update",outcome="accepted"} 1
}

// scrape fetches /metrics and returns the lines that start with one of wants, in the
// order of wants.
func scrape(addr string, wants []string) []string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out []string
	for _, want := range wants {
		for line := range strings.Lines(string(body)) {
			if strings.HasPrefix(line, want) {
				out = append(out, line)
			}
		}
	}
	return out
}
