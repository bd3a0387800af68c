// Jobssample is the jobs sample of the AWS IoT Device SDK for Python v1 in Go, on
// the low-level jobs client: it lists the thing's pending jobs, starts the next one,
// "executes" it (prints its document), reports it SUCCEEDED with the version it
// started, and repeats until nothing is pending.
//
// The Python sample drives the same loop from callbacks on the reply topics
// (createJobSubscription, sendJobsQuery, sendJobsStartNext, sendJobsUpdate); with
// jobsclient each request returns its own reply, so the loop is plain code.
//
// Without --endpoint it runs against an embedded localiot, over mutual TLS with the
// thing's own certificate, after creating --jobs jobs for the thing as an operator
// would:
//
//	go run ./examples/jobs/jobssample
//
// Against AWS IoT, create jobs for the thing first, then:
//
//	go run ./examples/jobs/jobssample --endpoint mqtts://XXXX-ats.iot.eu-west-1.amazonaws.com:8883 \
//	    --ca AmazonRootCA1.pem --cert device.pem.crt --key private.pem.key --thing my-device --client-id my-device
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/jobsclient"
	"github.com/shadowsync/shadowsync/jobstate"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/transport"
)

func main() { cmdkit.Main(run) }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("jobssample", flag.ContinueOnError)
	fs.SetOutput(stdout)
	flags := cmdkit.RegisterFlags(fs, "JobsSampleThing")
	jobs := fs.Int("jobs", 3, "jobs the embedded run creates for the thing before it starts")
	if err := cmdkit.Parse(fs, args); err != nil {
		return err
	}
	if err := jobstate.ValidateThingName(flags.Thing); err != nil {
		return cmdkit.Usagef("--thing: %v", err)
	}
	out := cmdkit.NewPrinter(stdout)
	tgt, err := cmdkit.Open(ctx, flags, cmdkit.Options{Listener: cmdkit.TLS, Thing: flags.Thing})
	if err != nil {
		return err
	}
	defer tgt.Close()
	if tgt.Local {
		for i := 1; i <= *jobs; i++ {
			doc, _ := json.Marshal(map[string]string{"operation": "print", "message": fmt.Sprintf("hello from job %d", i)})
			spec := localiot.JobSpec{JobID: fmt.Sprintf("sample-job-%d", i), Targets: []string{flags.Thing}, Document: doc}
			if _, err := tgt.Server().CreateJob(ctx, spec); err != nil {
				return err
			}
			out.Printf("operator: created job %s", spec.JobID)
		}
	}

	cfg := tgt.Config("jobsSample")
	conn, err := transport.Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	client, err := jobsclient.New(conn, jobsclient.Options{})
	if err != nil {
		return err
	}
	defer client.Close(context.WithoutCancel(ctx))
	th, err := client.Thing(flags.Thing)
	if err != nil {
		return err
	}
	handledBy := map[string]string{"HandledBy": conn.ClientID()}
	for done := 0; ; done++ {
		pending, err := th.GetPending(ctx)
		if err != nil {
			return err
		}
		out.Printf("pending: %d in progress, %d queued", len(pending.InProgressJobs), len(pending.QueuedJobs))
		started, err := th.StartNext(ctx, jobstate.StartNextRequest{StatusDetails: map[string]string{"StartedBy": conn.ClientID()}})
		if err != nil {
			return err
		}
		ex := started.Execution
		if ex == nil {
			out.Printf("no more jobs: %d executed", done)
			return nil
		}
		out.Printf("executing job %s: %s", ex.JobID, ex.JobDocument)
		version, number := ex.VersionNumber, ex.ExecutionNumber
		if _, err := th.Update(ctx, ex.JobID, jobstate.UpdateRequest{
			Status: jobstate.Succeeded, StatusDetails: handledBy, ExpectedVersion: &version, ExecutionNumber: &number,
		}); err != nil {
			return err
		}
		out.Printf("job %s SUCCEEDED", ex.JobID)
	}
}
