package localiot

import (
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// The console binds loopback only unless told otherwise, like the plain listener.
func TestConsoleOptions(t *testing.T) {
	for _, c := range []struct {
		console *ConsoleListener
		ok      bool
	}{
		{&ConsoleListener{}, true},
		{&ConsoleListener{Addr: "localhost:0"}, true},
		{&ConsoleListener{Addr: "[::1]:0"}, true},
		{&ConsoleListener{Addr: "0.0.0.0:8080"}, false},
		{&ConsoleListener{Addr: ":8080"}, false},
		{&ConsoleListener{Addr: ":8080", InsecureAnyAddress: true}, true},
		{&ConsoleListener{History: -1}, false},
		{&ConsoleListener{History: maxConsoleHistory + 1}, false},
	} {
		_, err := New(Options{Console: c.console})
		if c.ok != (err == nil) || err != nil && !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Console %+v: New error %v", *c.console, err)
		}
	}
}

// The edit endpoint changes a shadow only for the console's own pages: a request
// without the page's token, from another origin, or for a host name other than
// localhost (DNS rebinding) is refused and changes nothing.
func TestConsoleRefusesForeignRequests(t *testing.T) {
	srv := startServer(t, Options{Console: &ConsoleListener{}})
	base := srv.Endpoints().Console
	hc := &http.Client{Timeout: wait}
	do := func(method, url, body string, header map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	code, page := do("GET", base+"/", "", nil)
	m := regexp.MustCompile(`name="console-token" content="([0-9a-f]{32})"`).FindStringSubmatch(page)
	if code != http.StatusOK || m == nil {
		t.Fatalf("GET /: %d, no token in:\n%s", code, page)
	}
	token := m[1]
	edit := base + "/shadow/desired?thing=door"
	id := shadowstate.ID{Thing: "door"}

	for _, c := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"no token", map[string]string{"Content-Type": "application/json"}, http.StatusForbidden},
		{"wrong token", map[string]string{consoleTokenHeader: strings.Repeat("0", 32)}, http.StatusForbidden},
		{"cross-site fetch", map[string]string{consoleTokenHeader: token, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"other origin", map[string]string{consoleTokenHeader: token, "Origin": "http://evil.example"}, http.StatusForbidden},
		{"rebound host name", map[string]string{consoleTokenHeader: token, "Host": "evil.example"}, http.StatusMisdirectedRequest},
	} {
		if code, body := do("POST", edit, `{"open":true}`, c.header); code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.want)
		}
	}
	if code, _ := do("GET", base+"/", "", map[string]string{"Host": "evil.example:80"}); code != http.StatusMisdirectedRequest {
		t.Errorf("GET / for host evil.example: %d, want %d", code, http.StatusMisdirectedRequest)
	}
	if sh, _ := srv.Shadow(id); sh.Exists {
		t.Fatalf("a refused edit created the shadow: %+v", sh)
	}

	if code, body := do("POST", edit, `{"open":true}`, map[string]string{consoleTokenHeader: token, "Sec-Fetch-Site": "same-origin"}); code != http.StatusOK || body != `{"version":1}` {
		t.Fatalf("same-origin edit: %d %s", code, body)
	}
	if code, body := do("POST", edit, `["open"]`, map[string]string{consoleTokenHeader: token}); code != http.StatusBadRequest || !strings.Contains(body, "must be a JSON object") {
		t.Errorf("edit with an array: %d %s", code, body)
	}
	if sh, _ := srv.Shadow(id); sh.Version != 1 || sh.Desired["open"] != true {
		t.Errorf("shadow after the edits: version %d, desired %v; want 1 and open true", sh.Version, sh.Desired)
	}
}

// An edit names the whole desired state: keys it drops become null in the update.
func TestDesiredPatch(t *testing.T) {
	cur := shadowstate.Object{"a": 1.0, "b": shadowstate.Object{"c": 1.0, "d": 2.0}, "f": "same"}
	next := shadowstate.Object{"b": shadowstate.Object{"c": 1.0}, "e": 3.0, "f": "same"}
	want := shadowstate.Object{"a": nil, "b": shadowstate.Object{"d": nil}, "e": 3.0}
	if diff := cmp.Diff(want, desiredPatch(cur, next)); diff != "" {
		t.Errorf("desiredPatch (-want +got):\n%s", diff)
	}
}

// The history keeps the last Console.History documents messages of a shadow, newest
// first, each with the client ID of the client that sent the update.
func TestConsoleHistory(t *testing.T) {
	srv := startServer(t, Options{Console: &ConsoleListener{History: 2}})
	c, err := connect(t, srv.Endpoints().Plain, "fan-7@test")
	if err != nil {
		t.Fatal(err)
	}
	if tok := c.Subscribe("$aws/things/fan-7/shadow/update/documents", 1, nil); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	for _, speed := range []string{"1", "2", "3"} {
		if tok := c.Publish("$aws/things/fan-7/shadow/update", 1, false, `{"state":{"reported":{"speed":`+speed+`}}}`); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		select {
		case <-c.msgs:
		case <-c.lost:
			t.Fatal("connection lost")
		}
	}
	entries := srv.shadow.history.entries(shadowstate.ID{Thing: "fan-7"})
	var got []string
	for _, e := range entries {
		got = append(got, e.Writer+" "+string(e.Documents))
	}
	if len(entries) != 2 || entries[0].Writer != "fan-7@test" || !strings.Contains(string(entries[0].Documents), `"current":{"state":{"reported":{"speed":3}}`) || !strings.Contains(string(entries[1].Documents), `"current":{"state":{"reported":{"speed":2}}`) {
		t.Errorf("history: %q; want versions 3 then 2, written by fan-7@test", got)
	}
}
