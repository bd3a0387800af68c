// Package chromium starts Debian's chromium, headless, for tests that drive a web page
// in a real browser with chromedp. It is internal: a test helper, not API.
package chromium

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// RequireEnv is the environment variable under which a missing chromium fails a test
// instead of skipping it; .ci/run sets it after installing the package.
const RequireEnv = "SHADOWSYNC_REQUIRE_PACKAGES"

// Path returns the path of the chromium binary (chromium, or chromium-browser as some
// distributions call it). Without one the test is skipped, naming the Debian package
// to install, unless RequireEnv is set, in which case it fails.
func Path(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found: install Debian's package with `apt-get install --no-install-recommends chromium`"
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s (%s is set, so this fails instead of skipping)", msg, RequireEnv)
	}
	t.Skip(msg)
	return ""
}

// New starts a headless chromium with one tab for the rest of the test and returns a
// chromedp context for that tab. Every action run with it ends within timeout of the
// start; when the test ends, the browser is closed and waited for. Without chromium
// the test is skipped as Path says.
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	bin := Path(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.WindowSize(1280, 900),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to start its sandbox as root (CI containers run as root).
		opts = append(opts, chromedp.NoSandbox)
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), timeout)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
		cancelTimeout()
	})
	if err := chromedp.Do(tab); err != nil { // starts the browser and opens the tab
		t.Fatalf("start chromium (%s): %v", bin, err)
	}
	return tab
}
