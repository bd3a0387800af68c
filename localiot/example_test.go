package localiot_test

import (
	"context"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// A device updates its shadow on an in-process localiot and reads back the version.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	srv, err := localiot.New(localiot.Options{}) // plain MQTT on 127.0.0.1, an ephemeral port
	if err != nil {
		panic(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Start(ctx) }()
	<-srv.Ready()

	device := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(srv.Endpoints().Plain).SetClientID("my-device"))
	if tok := device.Connect(); tok.Wait() && tok.Error() != nil {
		panic(tok.Error())
	}
	accepted := make(chan string, 1)
	device.Subscribe("$aws/things/my-device/shadow/update/accepted", 1, func(_ mqtt.Client, m mqtt.Message) {
		accepted <- string(m.Payload())
	}).Wait()
	device.Publish("$aws/things/my-device/shadow/update", 1, false, `{"state":{"reported":{"temp":21}}}`).Wait()

	select {
	case <-accepted:
		sh, _ := srv.Shadow(shadowstate.ID{Thing: "my-device"})
		fmt.Println("version", sh.Version, "reported", sh.Reported)
	case <-time.After(5 * time.Second):
		fmt.Println("no reply")
	}
	device.Disconnect(0)
	cancel()
	<-stopped
	// Output: version 1 reported map[temp:21]
}
