package localiot

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shadowsync/shadowsync/internal/chromium"
	"github.com/shadowsync/shadowsync/reconciler"
	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// The console in a real browser: the page lists a thing, a device's report shows up
// without a reload, an edit of desired made in the page reaches the device, which
// converges, and the page shows it; an invalid edit shows an error in place and
// changes nothing.
func TestConsoleInBrowser(t *testing.T) {
	tab := chromium.New(t, time.Minute)
	srv := startServer(t, Options{Console: &ConsoleListener{}})
	eps := srv.Endpoints()
	if !strings.HasPrefix(eps.Console, "http://127.0.0.1:") {
		t.Fatalf("Endpoints.Console = %q, want http://127.0.0.1:PORT", eps.Console)
	}

	// The device: the reconciler's Echo, which reports whatever is desired, over MQTT.
	const deviceID = "lamp-1@echo"
	id := shadowstate.ID{Thing: "lamp-1"}
	mgr, err := reconciler.NewManager(transport.Config{Endpoint: eps.Plain, ClientID: deviceID}, reconciler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lamp, err := reconciler.Echo(mgr, id.Thing)
	if err != nil {
		t.Fatal(err)
	}
	mctx, stopDevice := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		stopDevice()
		select {
		case err := <-stopped:
			if err != nil {
				t.Errorf("device: %v", err)
			}
		case <-time.After(wait):
			t.Error("device did not stop")
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := mgr.Conn().AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	report := func(celsius string) {
		t.Helper()
		err := lamp.Report(ctx, id.Thing, func(o *shadowstate.Object) {
			if *o == nil {
				*o = shadowstate.Object{}
			}
			(*o)["celsius"] = json.Number(celsius)
		})
		if err != nil {
			t.Fatalf("report: %v", err)
		}
	}
	report("20")
	if !poll(wait, func() bool { sh, _ := srv.Shadow(id); return sh.Exists }) {
		t.Fatal("the device's first report did not create the shadow")
	}

	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tab, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// until waits for a JavaScript condition on the page, for at most 10 s.
	until := func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	live := `document.getElementById('live-status').textContent === 'live'`

	step("open the list of things",
		chromedp.Navigate(eps.Console),
		chromedp.WaitVisible(chromedp.ID("thing-lamp-1")),
	)
	until("the list's event stream", live)
	step("open the shadow",
		chromedp.Click(chromedp.CSS(`#thing-lamp-1 .shadow-link a`)),
		chromedp.WaitVisible(chromedp.ID("desired-input")),
	)
	until("the shadow page's event stream", live)
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`window.sameDocument = true`)); err != nil {
		t.Fatal(err)
	}

	report("21.5")
	until("the report, live", `document.getElementById('reported').textContent.includes('"celsius": 21.5') && window.sameDocument === true`)

	step("edit desired",
		chromedp.SetValue(chromedp.ID("desired-input"), `{"interval": 30}`),
		chromedp.Click(chromedp.ID("edit-apply")),
	)
	until("the edit accepted", `document.getElementById('edit-ok').textContent.startsWith('Accepted')`)
	until("the device's convergence, live", `document.getElementById('reported').textContent.includes('"interval": 30') &&
		document.getElementById('sync').textContent === 'in sync' && window.sameDocument === true`)
	sh, err := srv.Shadow(id)
	if err != nil {
		t.Fatal(err)
	}
	if sh.Reported["interval"] != json.Number("30") || sh.Desired["interval"] != json.Number("30") {
		t.Fatalf("shadow after the edit: desired %v, reported %v; want interval 30 in both (the device echoes it)", sh.Desired, sh.Reported)
	}
	until("the history's writers", `(() => {
		const w = [...document.querySelectorAll('#history .writer')].map(e => e.textContent);
		return w.includes('console') && w.includes('`+deviceID+`');
	})()`)

	step("an invalid edit",
		chromedp.SetValue(chromedp.ID("desired-input"), `{"interval": }`),
		chromedp.Click(chromedp.ID("edit-apply")),
		chromedp.WaitVisible(chromedp.ID("edit-error")),
	)
	msg, err := chromedp.Run(tab, chromedp.Text(chromedp.ID("edit-error")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "Invalid JSON at line 1, column 14") {
		t.Errorf("error shown for the invalid edit: %q", msg)
	}
	after, err := srv.Shadow(id)
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != sh.Version {
		t.Errorf("version %d after the invalid edit, want %d: nothing changes", after.Version, sh.Version)
	}

	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "console-shadow.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the shadow page: %s", shot)

	step("the clients, with their subscriptions",
		chromedp.Navigate(eps.Console),
		chromedp.WaitVisible(chromedp.CSS(`[id="client-`+deviceID+`"]`)),
	)
	subs, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(`[id="client-`+deviceID+`"]`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(subs, "$aws/things/lamp-1/shadow/update/documents") {
		t.Errorf("the device's row does not show its documents subscription: %q", subs)
	}
}
