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
	"github.com/aws/aws-sdk-go-v2/service/iot"

	"github.com/shadowsync/shadowsync/localiot"
)

// A fleet tool written with aws-sdk-go-v2's iot client, as for AWS IoT, creates a job
// on localiot's HTTPS control plane; the device hears of it on notify-next over MQTT.
func Example_jobsControlPlane() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// localiot with plain MQTT for the device and the HTTPS listener for the tool.
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

	// The device: waits for its next job.
	next := make(chan string, 1)
	device := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(srv.Endpoints().Plain).SetClientID("lamp-1"))
	if tok := device.Connect(); tok.Wait() && tok.Error() != nil {
		panic(tok.Error())
	}
	defer device.Disconnect(0)
	device.Subscribe("$aws/things/lamp-1/jobs/notify-next", 1, func(_ mqtt.Client, m mqtt.Message) {
		next <- string(m.Payload())
	}).Wait()

	// The tool: the code it runs against AWS IoT, with localiot's endpoint, key and CA.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool}}
	defer tr.CloseIdleConnections()
	tool := iot.New(iot.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.Endpoints().HTTPS), // https://127.0.0.1:PORT
		Credentials:  credentials.NewStaticCredentialsProvider(key.AccessKeyID, key.SecretAccessKey, ""),
		HTTPClient:   &http.Client{Transport: tr},
	})
	created, err := tool.CreateJob(ctx, &iot.CreateJobInput{
		JobId:    aws.String("fw-1"),
		Targets:  []string{"arn:aws:iot:us-east-1:123456789012:thing/lamp-1"},
		Document: aws.String(`{"operation":"upgrade","version":"2.0"}`),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("created", aws.ToString(created.JobArn))

	select {
	case msg := <-next:
		var n struct {
			Execution struct {
				JobID       string          `json:"jobId"`
				Status      string          `json:"status"`
				JobDocument json.RawMessage `json:"jobDocument"`
			} `json:"execution"`
		}
		if err := json.Unmarshal([]byte(msg), &n); err != nil {
			panic(err)
		}
		fmt.Println("device's next job:", n.Execution.JobID, n.Execution.Status, string(n.Execution.JobDocument))
	case <-ctx.Done():
		panic("no notify-next")
	}
	out, err := tool.DescribeJobExecution(ctx, &iot.DescribeJobExecutionInput{
		JobId: aws.String("fw-1"), ThingName: aws.String("lamp-1"),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("execution", out.Execution.Status)
	// Output:
	// created arn:aws:iot:us-east-1:123456789012:job/fw-1
	// device's next job: fw-1 QUEUED {"operation":"upgrade","version":"2.0"}
	// execution QUEUED
}
