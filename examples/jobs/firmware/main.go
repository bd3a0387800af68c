// Firmware is a device that updates its firmware when an AWS IoT job tells it to, the
// controller way: a typed job document, a handler the framework calls with the next
// job (also one queued while the device was offline, or one a crash interrupted), and
// the outcome written back to the job execution.
//
// The handler downloads the image the job names, checks its SHA-256, "flashes" it by
// writing it to a directory, reports its progress in the execution's statusDetails,
// and reports the installed version in the thing's shadow. A document that fails the
// schema of FirmwareJob is REJECTED, naming the field; a checksum that does not match
// is FAILED.
//
// Without --endpoint it runs against an embedded localiot, over mutual TLS with the
// thing's own certificate: it serves an image from a local HTTP server on 127.0.0.1,
// creates the job itself as an operator would, and exits once the job has ended:
//
//	go run ./examples/jobs/firmware
//
// Against AWS IoT, create a job whose document is {"version", "url", "sha256"} for
// the thing, then:
//
//	go run ./examples/jobs/firmware --endpoint mqtts://XXXX-ats.iot.eu-west-1.amazonaws.com:8883 \
//	    --ca AmazonRootCA1.pem --cert device.pem.crt --key private.pem.key --thing my-device --client-id my-device
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shadowsync/shadowsync/cmdkit"
	"github.com/shadowsync/shadowsync/jobstate"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowclient"
)

// FirmwareJob is the job document: which firmware to install and where to get it.
type FirmwareJob struct {
	Version string `json:"version" jsonschema:"required,pattern=^[0-9]+(\\.[0-9]+)*$,description=firmware version to install"`
	URL     string `json:"url" jsonschema:"required,pattern=^https?://,description=where to download the image"`
	SHA256  string `json:"sha256" jsonschema:"required,pattern=^[0-9a-f]{64}$,description=SHA-256 of the image, hex"`
}

// device flashes firmware into dir and reports the installed version in its shadow.
type device struct {
	dir    string
	http   *http.Client
	shadow *shadowclient.Client
	out    *cmdkit.Printer
}

// HandleJob installs the firmware the job names. It is idempotent: a job resumed
// after a crash finds the version already flashed and only reports it.
func (d *device) HandleJob(ctx context.Context, job reconciler.Job[FirmwareJob]) (reconciler.JobResult, error) {
	fw := job.Document
	d.out.Printf("%s: job %s: firmware %s (resumed %v)", job.Thing, job.ID, fw.Version, job.Resumed)
	if installed, _ := os.ReadFile(filepath.Join(d.dir, "version")); string(installed) != fw.Version {
		if err := job.Progress(ctx, map[string]string{"step": "downloading", "version": fw.Version}); err != nil {
			return reconciler.JobResult{}, err
		}
		image, err := d.download(ctx, fw.URL)
		if err != nil {
			return reconciler.JobResult{}, err
		}
		if sum := sha256.Sum256(image); hex.EncodeToString(sum[:]) != fw.SHA256 {
			return reconciler.JobResult{StatusDetails: map[string]string{"step": "verifying"}},
				fmt.Errorf("image checksum %x does not match the job's %s", sum, fw.SHA256)
		}
		d.out.Printf("%s: downloaded %d bytes, checksum ok", job.Thing, len(image))
		if err := job.Progress(ctx, map[string]string{"step": "flashing", "version": fw.Version}); err != nil {
			return reconciler.JobResult{}, err
		}
		if err := d.flash(image, fw.Version); err != nil {
			return reconciler.JobResult{}, err
		}
	}
	h, err := d.shadow.Shadow(job.Thing, "")
	if err != nil {
		return reconciler.JobResult{}, err
	}
	if _, err := h.UpdateReported(ctx, map[string]any{"firmware": map[string]string{"version": fw.Version}}); err != nil {
		return reconciler.JobResult{}, fmt.Errorf("report the new version: %w", err)
	}
	d.out.Printf("%s: firmware %s installed", job.Thing, fw.Version)
	return reconciler.JobResult{StatusDetails: map[string]string{"step": "done", "version": fw.Version}}, nil
}

// download fetches the image, within ctx: a cancelled job stops the download.
func (d *device) download(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// flash writes the image and then its version, each by renaming a complete file into
// place, so that a crash leaves either the old firmware or the new one.
func (d *device) flash(image []byte, version string) error {
	for name, data := range map[string][]byte{"firmware.bin": image, "version": []byte(version)} {
		tmp := filepath.Join(d.dir, name+".tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(d.dir, name)); err != nil {
			return err
		}
	}
	return nil
}

func main() { cmdkit.Main(run) }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("firmware", flag.ContinueOnError)
	fs.SetOutput(stdout)
	conn := cmdkit.RegisterFlags(fs, "firmware-1")
	dir := fs.String("dir", "", "`DIR` to flash firmware into (default: a new temporary directory)")
	version := fs.String("version", "1.1", "firmware version the embedded run's job installs")
	corrupt := fs.Bool("corrupt", false, "the embedded run serves an image whose checksum does not match the job's")
	if err := cmdkit.Parse(fs, args); err != nil {
		return err
	}
	if err := jobstate.ValidateThingName(conn.Thing); err != nil {
		return cmdkit.Usagef("--thing: %v", err)
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "shadowsync-firmware-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	out := cmdkit.NewPrinter(stdout)
	tgt, err := cmdkit.Open(ctx, conn, cmdkit.Options{Listener: cmdkit.TLS, Thing: conn.Thing})
	if err != nil {
		return err
	}
	defer tgt.Close()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	mgr, err := reconciler.NewManager(tgt.Config("firmware"), reconciler.Options{Logger: logger})
	if err != nil {
		return err
	}
	dev := &device{dir: *dir, http: &http.Client{Timeout: time.Minute}, shadow: mgr.Client(), out: out}
	if _, err := reconciler.RegisterJobs(mgr, reconciler.JobOptions{Things: []string{conn.Thing}, StepTimeout: 10 * time.Minute}, dev); err != nil {
		return err
	}
	// The embedded run watches the thing's pending list to know when its job is over.
	var ended <-chan struct{}
	if tgt.Local {
		if ended, err = watchEnd(ctx, mgr, conn.Thing, "firmware-"+strings.ReplaceAll(*version, ".", "_")); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()
	if err := mgr.Conn().AwaitConnection(ctx); err != nil {
		cancel()
		<-stopped
		return err
	}
	out.Printf("firmware device %s connected to %s", conn.Thing, tgt.Endpoint)
	if !tgt.Local {
		return <-stopped // runs until interrupted
	}
	jobID, err := createJob(ctx, tgt.Server(), conn.Thing, *version, *corrupt)
	if err == nil {
		out.Printf("operator: created job %s", jobID)
		select {
		case <-ended:
			x, derr := tgt.Server().DescribeJobExecution(ctx, jobID, conn.Thing)
			err = derr
			if derr == nil {
				out.Printf("job %s %s %v", jobID, x.Status, x.StatusDetails)
			}
		case <-time.After(30 * time.Second):
			err = errors.New("the job did not end within 30s")
		case <-ctx.Done():
		}
	}
	cancel()
	if serr := <-stopped; err == nil {
		err = serr
	}
	return err
}

// watchEnd returns a channel closed once jobID, having been pending on thing, is no
// longer: the device finished it. It uses the manager's own jobs client.
func watchEnd(ctx context.Context, mgr *reconciler.Manager, thing, jobID string) (<-chan struct{}, error) {
	th, err := mgr.Jobs().Thing(thing)
	if err != nil {
		return nil, err
	}
	ended := make(chan struct{})
	seen, closed := false, false
	_, err = th.OnNotify(ctx, func(_ context.Context, n *jobstate.ListNotification) {
		pending := false
		for _, list := range n.Jobs {
			pending = pending || slices.ContainsFunc(list, func(s jobstate.ExecutionSummary) bool { return s.JobID == jobID })
		}
		if pending {
			seen = true
		} else if seen && !closed {
			closed = true
			close(ended)
		}
	})
	return ended, err
}

// createJob acts as the operator of the embedded run: it serves a firmware image on
// 127.0.0.1 and creates the job that installs it. The server stops with ctx.
func createJob(ctx context.Context, srv *localiot.Server, thing, version string, corrupt bool) (string, error) {
	image := []byte("shadowsync firmware " + version + "\n" + strings.Repeat("\x00\x01\x02\x03", 4096))
	sum := sha256.Sum256(image)
	if corrupt {
		image = append(image, 0xff)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { // on 127.0.0.1
		_, _ = w.Write(image)
	}))
	context.AfterFunc(ctx, hs.Close)
	doc, err := json.Marshal(FirmwareJob{Version: version, URL: hs.URL + "/firmware-" + version + ".bin", SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		return "", err
	}
	jobID := "firmware-" + strings.ReplaceAll(version, ".", "_")
	_, err = srv.CreateJob(ctx, localiot.JobSpec{JobID: jobID, Targets: []string{thing}, Document: doc, Description: "install firmware " + version})
	return jobID, err
}
