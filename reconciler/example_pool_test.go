package reconciler_test

import (
	"context"
	"fmt"
	"time"

	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/transport"
)

// A gateway whose sub-devices come and go, on AWS IoT where each connection may
// publish 100 times a second: an Auto pool opens as many connections as the shadows
// need — here each changing once a second, so 80 fill a connection — and grows as
// AddThing brings more. The things routed keep their connection; the new connections
// take the things added after each growth.
func ExamplePool_auto() {
	endpoint, stopLocalIoT := localIoT()
	defer stopLocalIoT()
	ctx := context.Background()
	mgr, err := reconciler.NewManager(transport.Config{Endpoint: endpoint, ClientID: "gateway-7"}, reconciler.Options{
		Pool: reconciler.Pool{Auto: true, ChangeEvery: time.Second},
	})
	if err != nil {
		panic(err)
	}
	var first []string
	for i := range 50 {
		first = append(first, fmt.Sprintf("sensor-%03d", i))
	}
	sensors, err := reconciler.Echo(mgr, first...)
	if err != nil {
		panic(err)
	}
	defer startManager(mgr)()
	fmt.Println("connections at start:", mgr.PoolSize())

	for i := 50; i < 120; i++ {
		if err := sensors.AddThing(ctx, fmt.Sprintf("sensor-%03d", i)); err != nil {
			panic(err)
		}
	}
	fmt.Println("connections with 120 sensors:", mgr.PoolSize())
	fmt.Println("sensor-000 on", mgr.PoolConn("sensor-000").ClientID())
	fmt.Println("sensor-119 on", mgr.PoolConn("sensor-119").ClientID())

	sensor, disconnect := appShadow(ctx, endpoint, "sensor-119")
	defer disconnect()
	if _, err := sensor.UpdateDesired(ctx, map[string]any{"interval": 30}); err != nil {
		panic(err)
	}
	doc := waitFor(ctx, sensor, inSync)
	fmt.Println("sensor-119 reported", jsonText(doc.State.Reported))
	// Output:
	// connections at start: 1
	// connections with 120 sensors: 2
	// sensor-000 on gateway-7
	// sensor-119 on gateway-7-1
	// sensor-119 reported {"interval":30}
}
