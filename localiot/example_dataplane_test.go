package localiot_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iotdataplane"

	"github.com/shadowsync/shadowsync/localiot"
)

// The app half of a thermostat, written with aws-sdk-go-v2's iotdataplane client as
// for AWS IoT, runs against localiot's HTTPS data plane; the device half is on MQTT.
func Example_dataPlane() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// localiot with plain MQTT for the device and the HTTPS data plane for the app.
	certs, err := localiot.EnsureCerts("") // in memory: a CA and a server certificate
	if err != nil {
		panic(err)
	}
	key := localiot.Credential{AccessKeyID: "AKIDLOCAL", SecretAccessKey: "local-secret"}
	srv, err := localiot.New(localiot.Options{
		Plain: &localiot.PlainListener{},
		HTTPS: &localiot.HTTPSListener{Certificate: certs.Server, Credentials: []localiot.Credential{key}},
	})
	if err != nil {
		panic(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Start(ctx) }()
	<-srv.Ready()
	defer func() { cancel(); <-stopped }()

	// The device: reports whatever target temperature is desired.
	device := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(srv.Endpoints().Plain).SetClientID("thermostat-1"))
	if tok := device.Connect(); tok.Wait() && tok.Error() != nil {
		panic(tok.Error())
	}
	defer device.Disconnect(0)
	device.Subscribe("$aws/things/thermostat-1/shadow/update/delta", 1, func(c mqtt.Client, m mqtt.Message) {
		var delta struct{ State json.RawMessage }
		_ = json.Unmarshal(m.Payload(), &delta)
		c.Publish("$aws/things/thermostat-1/shadow/update", 1, false, `{"state":{"reported":`+string(delta.State)+`}}`)
	}).Wait()

	// The app: the code it runs against AWS IoT, with localiot's endpoint, key and CA.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool}}
	defer tr.CloseIdleConnections()
	app := iotdataplane.New(iotdataplane.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.Endpoints().HTTPS), // https://127.0.0.1:PORT
		Credentials:  credentials.NewStaticCredentialsProvider(key.AccessKeyID, key.SecretAccessKey, ""),
		HTTPClient:   &http.Client{Transport: tr},
	})
	_, err = app.UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{
		ThingName: aws.String("thermostat-1"),
		Payload:   []byte(`{"state":{"desired":{"target":21}}}`),
	})
	if err != nil {
		panic(err)
	}
	// Poll until the device has reported the target: at most 100 reads, 10 s.
	for range 100 {
		out, err := app.GetThingShadow(ctx, &iotdataplane.GetThingShadowInput{ThingName: aws.String("thermostat-1")})
		if err != nil {
			panic(err)
		}
		var doc struct {
			State struct {
				Reported struct{ Target *float64 }
			}
			Version int64
		}
		if err := json.Unmarshal(out.Payload, &doc); err != nil {
			panic(err)
		}
		if t := doc.State.Reported.Target; t != nil {
			fmt.Println("reported target", *t, "at version", doc.Version)
			return
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			panic(ctx.Err())
		}
	}
	fmt.Println("device did not report")
	// Output: reported target 21 at version 2
}
