package shadowstate_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// Delta is what the device still has to do: the keys of desired that reported lacks
// or holds differently. Nested objects recurse; arrays compare whole; keys only
// reported never appear.
func ExampleDelta() {
	var desired, reported shadowstate.Object
	_ = shadowstate.Unmarshal([]byte(`{"target":24,"mode":"heat","fan":{"speed":2,"swing":true},"zones":[1,2]}`), &desired)
	_ = shadowstate.Unmarshal([]byte(`{"target":22,"mode":"heat","fan":{"speed":2,"swing":false},"zones":[1],"temp":21.5}`), &reported)
	fmt.Println(shadowstate.Delta(desired, reported))
	// Output: map[fan:map[swing:true] target:24 zones:[1 2]]
}

// Merge applies an update to a section as the service does: null deletes a key,
// objects merge key by key, anything else replaces the stored value whole.
func ExampleMerge() {
	var stored, update shadowstate.Object
	_ = shadowstate.Unmarshal([]byte(`{"mode":"heat","fan":{"speed":2,"swing":true},"zones":[1,2]}`), &stored)
	_ = shadowstate.Unmarshal([]byte(`{"mode":null,"fan":{"speed":3},"zones":[3]}`), &update)
	fmt.Println(shadowstate.Merge(stored, update))
	// Output: map[fan:map[speed:3 swing:true] zones:[3]]
}

// Optimistic locking: an update that expects a version the shadow is no longer at is
// rejected with 409, an *shadowstate.Error carrying AWS's code and message.
func ExampleExpectVersion() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, _ := localiot.New(localiot.Options{})
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Start(ctx) }()
	<-srv.Ready()
	conn, err := transport.Dial(ctx, transport.Config{Endpoint: srv.Endpoints().Plain})
	if err != nil {
		panic(err)
	}
	client, _ := shadowstate.NewClient(conn, shadowstate.ClientOptions{})
	lamp, _ := client.Shadow("lamp-1", "")

	acc, _ := lamp.UpdateReported(ctx, map[string]any{"on": true})
	fmt.Println("version", acc.Version)
	_, _ = lamp.UpdateDesired(ctx, map[string]any{"on": false}) // someone else writes: version 2

	_, err = lamp.UpdateReported(ctx, map[string]any{"level": 10}, shadowstate.ExpectVersion(acc.Version))
	var rejected *shadowstate.Error
	if errors.As(err, &rejected) {
		fmt.Println(rejected.Code, rejected.Message)
	}

	client.Close(ctx)
	conn.Close(ctx)
	cancel()
	<-stopped
	// Output:
	// version 1
	// 409 Version conflict
}
