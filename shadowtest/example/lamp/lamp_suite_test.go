package lamp_test

import (
	"log/slog"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowtest"
	"github.com/shadowsync/shadowsync/shadowtest/example/lamp"
)

func TestLamp(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Lamp Suite")
}

// The things this suite's lamps are; each spec uses its own.
var things = []string{"lamp-fade", "lamp-refuse", "lamp-restart"}

var env *shadowtest.Env

var _ = BeforeSuite(func() {
	// A local AWS IoT for the whole suite; it stops by itself when the suite ends.
	log := slog.New(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: slog.LevelInfo}))
	env = shadowtest.Start(GinkgoT(), shadowtest.Options{Logger: log})

	// The device under test, run by the framework as in production, with the
	// outcome of each reconcile reported under "status".
	mgr, err := reconciler.NewManager(env.AppConfig(), reconciler.Options{Logger: log})
	Expect(err).NotTo(HaveOccurred())
	device := &lamp.Device{Step: 20, Every: 10 * time.Millisecond}
	_, err = reconciler.Register(mgr, reconciler.ControllerOptions{Things: things, StatusField: "status"}, device)
	Expect(err).NotTo(HaveOccurred())
	shadowtest.StartManager(GinkgoT(), mgr)

	SetDefaultEventuallyTimeout(10 * time.Second)
})

// newLamp returns what makes a device program for one lamp of its own, for specs that
// switch a device off and on with shadowtest.StartDevice.
func newLamp(thing string) func() (*reconciler.Manager, error) {
	device := &lamp.Device{Step: 20, Every: 10 * time.Millisecond}
	return func() (*reconciler.Manager, error) {
		mgr, err := reconciler.NewManager(env.AppConfig(), reconciler.Options{})
		if err != nil {
			return nil, err
		}
		_, err = reconciler.Register(mgr, reconciler.ControllerOptions{Things: []string{thing}, StatusField: "status"}, device)
		return mgr, err
	}
}
