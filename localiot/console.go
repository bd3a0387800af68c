package localiot

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// ConsoleListener configures the web console: an HTTP server of plain HTML pages that
// show every thing with its classic and named shadows (updated live, with server-sent
// events, as devices report), one shadow's desired, reported and delta state, metadata
// timestamps, version and recent history (each update with who wrote it), the
// connected clients with their subscriptions, and an editor of a shadow's desired
// state. An edit goes through the Device Shadow service like an MQTT or HTTPS update,
// so devices receive the delta.
//
// The console has no authentication and can change any shadow, so it binds loopback
// addresses only unless InsecureAnyAddress is set. Against other web pages open in
// the same browser, the edit endpoint requires a per-server token that only the
// console's own pages carry (in a request header, which a cross-origin page cannot
// set without the console's consent), refuses cross-origin requests
// (http.CrossOriginProtection), and every page answers only requests whose Host is an
// IP address or "localhost", so a DNS-rebinding page cannot read the token.
type ConsoleListener struct {
	// Addr is the host:port to listen on: a loopback IP address or "localhost", unless
	// InsecureAnyAddress is set. "" means 127.0.0.1:0 (an ephemeral port).
	Addr string
	// InsecureAnyAddress allows an Addr that is not loopback, which lets everyone who
	// can reach it read and change every shadow with no authentication; the server
	// then logs a warning when it starts.
	InsecureAnyAddress bool
	// History is how many /update/documents messages the console keeps per shadow.
	// Zero means 20; at most 1000.
	History int
}

// Console settings.
const (
	defaultConsoleHistory = 20
	maxConsoleHistory     = 1000
	// consoleTokenHeader carries the console's token on an edit.
	consoleTokenHeader = "X-Console-Token"
	// consoleWriter is the writer of the updates made in the console, in its history.
	consoleWriter = "console"
	// maxConsoleStreams bounds the event streams open at once.
	maxConsoleStreams = 64
	// consoleKeepAlive is how often an idle event stream gets a comment, so that
	// proxies and browsers keep it open and a gone browser is noticed.
	consoleKeepAlive = 15 * time.Second
	// consoleWriteTimeout bounds writing one response or one batch of events.
	consoleWriteTimeout = 10 * time.Second
	// maxPendingShadowEvents is how many changed shadows a stream remembers before it
	// tells its page to reload everything instead.
	maxPendingShadowEvents = 256
)

// validate checks c; a nil c is valid (no console).
func (c *ConsoleListener) validate() error {
	if c == nil {
		return nil
	}
	if !c.InsecureAnyAddress && !isLoopbackAddr(addrOrDefault(c.Addr)) {
		return fmt.Errorf("%w: Console.Addr %q is not a loopback address: the console has no authentication and can change every shadow; set Console.InsecureAnyAddress to serve it there anyway", ErrInvalidOptions, c.Addr)
	}
	if c.History < 0 || c.History > maxConsoleHistory {
		return fmt.Errorf("%w: Console.History %d: want 0 (the default, %d) to %d", ErrInvalidOptions, c.History, defaultConsoleHistory, maxConsoleHistory)
	}
	return nil
}

//go:embed console/*.html
var consoleFS embed.FS

// consoleTemplates are the console's pages, each parsed with the shared layout the
// first time a console renders one, so that programs without a console never parse them.
var consoleTemplates = sync.OnceValue(func() map[string]*template.Template {
	parse := func(page string) *template.Template {
		return template.Must(template.New("").Funcs(consoleFuncs).ParseFS(consoleFS, "console/layout.html", "console/"+page))
	}
	return map[string]*template.Template{"index": parse("index.html"), "shadow": parse("shadow.html")}
})

var consoleFuncs = template.FuncMap{
	"shadowURL": func(id shadowstate.ID) string { return consoleShadowURL("/shadow", id) },
}

// console serves the web console of one Server.
type console struct {
	srv   *Server
	opts  ConsoleListener
	token string // what an edit must carry in consoleTokenHeader
	hub   consoleHub
	http  *http.Server
	ln    net.Listener

	stop    context.CancelFunc // ends the event streams
	started bool               // serve was called
	done    chan struct{}      // closed when serve's goroutine has returned
	once    sync.Once
}

// attachConsole prepares the console when Options.Console is set: the shadow service
// starts recording history, and a broker hook reports client activity to the open
// pages. Nothing is bound until Start.
func (s *Server) attachConsole() error {
	if s.opts.Console == nil {
		return nil
	}
	c := &console{srv: s, opts: *s.opts.Console, done: make(chan struct{})}
	if c.opts.History == 0 {
		c.opts.History = defaultConsoleHistory
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	c.token = hex.EncodeToString(b[:])
	c.hub.subs = make(map[*consoleSub]struct{})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.index)
	mux.HandleFunc("GET /shadow", c.shadowPage)
	mux.HandleFunc("POST /shadow/desired", c.editDesired)
	mux.HandleFunc("GET /events", c.events)
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	c.http = &http.Server{
		Handler:           c.guard(http.NewCrossOriginProtection().Handler(mux)),
		ReadHeaderTimeout: defaultUpgradeTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.With("listener", "console").Handler(), slog.LevelDebug),
	}
	s.console = c
	s.shadow.history = newShadowHistory(c.opts.History, c.hub.shadowChanged)
	if err := s.broker.AddHook(&observer{fn: func(Event) { c.hub.clientsChanged() }}, nil); err != nil {
		return fmt.Errorf("add hook: %w", err)
	}
	return nil
}

// listen binds the console's listener; nothing is served until serve. It does
// nothing on a nil console.
func (c *console) listen(ctx context.Context, lc *net.ListenConfig) error {
	if c == nil {
		return nil
	}
	ln, err := lc.Listen(ctx, "tcp", addrOrDefault(c.opts.Addr))
	if err != nil {
		return err
	}
	bound := ln.Addr().String()
	switch {
	case isLoopbackAddr(bound):
	case !c.opts.InsecureAnyAddress: // "localhost" did not resolve to loopback
		_ = ln.Close()
		return fmt.Errorf("%s (from %q) is not a loopback address; set Console.InsecureAnyAddress to serve it there anyway", bound, c.opts.Addr)
	default:
		c.srv.opts.Logger.Warn("web console on an address that is not loopback: anyone who can reach it can read and change every shadow, with no authentication", "addr", bound)
	}
	c.ln = ln
	return nil
}

// endpoint is the console's URL, "" on a nil console.
func (c *console) endpoint() string {
	if c == nil {
		return ""
	}
	return "http://" + c.ln.Addr().String()
}

// serve serves the console on a goroutine of its own until close. It does nothing on
// a nil console.
func (c *console) serve() {
	if c == nil {
		return
	}
	c.started = true
	go func() {
		defer close(c.done)
		if err := c.http.Serve(c.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.srv.opts.Logger.Error("web console stopped", "error", err)
		}
	}()
}

// close ends the event streams, stops serving and closes every connection. It may be
// called more than once, on a nil console, and before serve.
func (c *console) close() {
	if c == nil || c.ln == nil {
		return
	}
	c.once.Do(func() {
		c.stop()
		ctx, cancel := context.WithTimeout(context.Background(), dataPlaneShutdown)
		defer cancel()
		if err := c.http.Shutdown(ctx); err != nil {
			_ = c.http.Close()
		}
		_ = c.ln.Close()
		if c.started {
			<-c.done
		}
	})
}

// guard sets the headers every answer carries and refuses requests whose Host is a
// name other than localhost: a web page that gets its own domain name resolved to
// this address (DNS rebinding) would otherwise be same-origin with the console and
// could read its token.
func (c *console) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if !consoleHostAllowed(r.Host) {
			http.Error(w, "the console answers requests for an IP address or localhost only", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// consoleHostAllowed reports whether host (a Host header, with or without port) is an
// IP address or localhost.
func consoleHostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}

// consolePage is what every page's template gets.
type consolePage struct {
	Title  string
	Token  string
	Nonce  string // of the page's inline script and style, for its Content-Security-Policy
	Page   string // "index" or "shadow"
	ID     shadowstate.ID
	Index  *indexData
	Shadow *shadowData
}

// render writes page with the template name, under a Content-Security-Policy that
// allows its own inline script and style and nothing from elsewhere.
func (c *console) render(w http.ResponseWriter, name string, page consolePage) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	page.Nonce = hex.EncodeToString(b[:])
	page.Token = c.token
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+page.Nonce+"'; style-src 'nonce-"+page.Nonce+"'; connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var buf strings.Builder
	if err := consoleTemplates()[name].ExecuteTemplate(&buf, name+".html", page); err != nil {
		c.srv.opts.Logger.Error("console page does not render", "page", name, "error", err)
		http.Error(w, "the page does not render; see the server's log", http.StatusInternalServerError)
		return
	}
	_, _ = io.WriteString(w, buf.String())
}

// indexData is the list of things and clients.
type indexData struct {
	Things  []thingRow
	NoList  bool // the store cannot list its shadows
	Clients []clientRow
}

type thingRow struct {
	Name    string
	Online  []string // client IDs connected as or named like this thing
	Shadows []shadowRow
}

type shadowRow struct {
	ID      shadowstate.ID
	Label   string // "classic" or the shadow's name
	Version int64
	InSync  bool // no delta
}

type clientRow struct {
	ID        string
	Principal string
	Listener  string
	Remote    string
	Subs      []subRow
}

type subRow struct {
	Filter string
	QoS    byte
}

// index shows every thing with its shadows, and the connected clients.
func (c *console) index(w http.ResponseWriter, r *http.Request) {
	data := &indexData{Clients: c.clients()}
	online := make(map[string][]string)
	for _, cl := range data.Clients {
		if t := clientIDThing(cl.ID); t != "" {
			online[t] = append(online[t], cl.ID)
		}
	}
	lister, ok := c.srv.opts.Store.(interface{ IDs() []shadowstate.ID })
	if !ok {
		data.NoList = true
	} else {
		byThing := make(map[string]*thingRow)
		for _, id := range lister.IDs() {
			sh, err := c.srv.opts.Store.Load(id)
			if err != nil || !sh.Exists {
				continue
			}
			t := byThing[id.Thing]
			if t == nil {
				t = &thingRow{Name: id.Thing, Online: online[id.Thing]}
				byThing[id.Thing] = t
			}
			label := id.Name
			if label == "" {
				label = "classic"
			}
			t.Shadows = append(t.Shadows, shadowRow{ID: id, Label: label, Version: sh.Version, InSync: len(shadowstate.Delta(sh.Desired, sh.Reported)) == 0})
		}
		for _, t := range byThing {
			slices.SortFunc(t.Shadows, func(a, b shadowRow) int { return strings.Compare(a.ID.Name, b.ID.Name) })
			data.Things = append(data.Things, *t)
		}
		slices.SortFunc(data.Things, func(a, b thingRow) int { return strings.Compare(a.Name, b.Name) })
	}
	c.render(w, "index", consolePage{Title: "Things", Page: "index", Index: data})
}

// clients lists the connected clients, by ID, from the broker.
func (c *console) clients() []clientRow {
	var rows []clientRow
	for _, cl := range c.srv.broker.Clients.GetAll() {
		if cl.Net.Inline || cl.Closed() {
			continue
		}
		row := clientRow{ID: cl.ID, Listener: cl.Net.Listener, Remote: cl.Net.Remote}
		if st, ok := c.srv.gate.state(cl); ok {
			row.Principal = st.who.String()
		}
		for _, sub := range cl.State.Subscriptions.GetAll() {
			row.Subs = append(row.Subs, subRow{Filter: sub.Filter, QoS: sub.Qos})
		}
		slices.SortFunc(row.Subs, func(a, b subRow) int { return strings.Compare(a.Filter, b.Filter) })
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b clientRow) int { return strings.Compare(a.ID, b.ID) })
	return rows
}

// shadowData is one shadow's page.
type shadowData struct {
	Exists    bool
	Version   int64
	DeletedAt string
	Desired   string // indented JSON, "" when empty
	Reported  string
	Delta     string
	Edit      string // desired as the editor starts with it
	EditURL   string
	Meta      []metaRow
	History   []historyRow
}

type metaRow struct {
	Section string // desired or reported
	Path    string
	At      string
}

type historyRow struct {
	Version  int64
	At       string
	Writer   string
	Desired  string // compact JSON of the state after the update
	Reported string
}

// shadowPage shows one shadow (query parameters thing and, for a named shadow, name).
func (c *console) shadowPage(w http.ResponseWriter, r *http.Request) {
	id, err := consoleShadowID(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sh, err := c.srv.opts.Store.Load(id)
	if err != nil {
		c.srv.opts.Logger.Error("console: shadow store failed", "shadow", id, "error", err)
		http.Error(w, "the shadow store failed; see the server's log", http.StatusInternalServerError)
		return
	}
	d := &shadowData{Exists: sh.Exists, Version: sh.Version, EditURL: consoleShadowURL("/shadow/desired", id), Edit: "{}"}
	if sh.DeletedAt != 0 {
		d.DeletedAt = formatUnix(sh.DeletedAt)
	}
	if sh.Exists {
		d.Desired, d.Reported, d.Delta = indentJSON(sh.Desired), indentJSON(sh.Reported), indentJSON(shadowstate.Delta(sh.Desired, sh.Reported))
		if d.Desired != "" {
			d.Edit = d.Desired
		}
		d.Meta = append(flattenMeta("desired", sh.MetaDesired), flattenMeta("reported", sh.MetaReported)...)
	}
	for _, e := range c.srv.shadow.history.entries(id) {
		var m struct {
			Current struct {
				State struct {
					Desired  json.RawMessage `json:"desired"`
					Reported json.RawMessage `json:"reported"`
				} `json:"state"`
				Version int64 `json:"version"`
			} `json:"current"`
		}
		_ = json.Unmarshal(e.Documents, &m)
		d.History = append(d.History, historyRow{
			Version: m.Current.Version, At: e.At.UTC().Format("2006-01-02 15:04:05.000Z"), Writer: e.Writer,
			Desired: string(m.Current.State.Desired), Reported: string(m.Current.State.Reported),
		})
	}
	c.render(w, "shadow", consolePage{Title: id.String(), Page: "shadow", ID: id, Shadow: d})
}

// editResult is the JSON answer to an edit: Error (with Offset, the byte offset of a
// JSON syntax error in the edit, when known) or the new Version.
type editResult struct {
	Error     string `json:"error,omitempty"`
	Offset    *int64 `json:"offset,omitempty"`
	Version   int64  `json:"version,omitempty"`
	Unchanged bool   `json:"unchanged,omitempty"`
}

// editDesired applies an edit of a shadow's desired state: the body is the desired
// state wanted, as JSON. It is sent to the shadow service as an update whose desired
// section is the body with null for every key the body drops, so the shadow's desired
// becomes the body. Nothing is applied when the body is not a JSON object (or null,
// which clears desired), or the request lacks the console's token.
func (c *console) editDesired(w http.ResponseWriter, r *http.Request) {
	answer := func(status int, res editResult) {
		data, _ := json.Marshal(res)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(data)
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(consoleTokenHeader)), []byte(c.token)) != 1 {
		answer(http.StatusForbidden, editResult{Error: "This request does not carry the console's token: edit from the console's own page (reload it if the server restarted)."})
		return
	}
	id, err := consoleShadowID(r)
	if err != nil {
		answer(http.StatusBadRequest, editResult{Error: err.Error()})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(shadowstate.MaxPayloadBytes)))
	if err != nil {
		answer(http.StatusRequestEntityTooLarge, editResult{Error: shadowstate.MsgPayloadTooLarge})
		return
	}
	next, res := parseDesiredEdit(body)
	if res.Error != "" {
		answer(http.StatusBadRequest, res)
		return
	}
	cur, err := c.srv.opts.Store.Load(id)
	if err != nil {
		answer(http.StatusInternalServerError, editResult{Error: "the shadow store failed; see the server's log"})
		return
	}
	var patch any // nil: clear desired
	if next != nil {
		p := desiredPatch(cur.Desired, next)
		if len(p) == 0 {
			answer(http.StatusOK, editResult{Version: cur.Version, Unchanged: true})
			return
		}
		patch = p
	}
	payload, err := json.Marshal(map[string]any{"state": map[string]any{"desired": patch}})
	if err != nil {
		answer(http.StatusBadRequest, editResult{Error: err.Error()})
		return
	}
	version, rejected := c.update(id, payload)
	if rejected != nil {
		status := rejected.Code
		if status < 400 || status > 599 {
			status = http.StatusInternalServerError
		}
		answer(status, editResult{Error: fmt.Sprintf("The shadow service rejected the update (%d): %s", rejected.Code, rejected.Message)})
		return
	}
	c.srv.opts.Logger.Info("console: desired state edited", "shadow", id, "version", version, "remote", r.RemoteAddr)
	answer(http.StatusOK, editResult{Version: version})
}

// update applies an update request to id through the shadow service, as the HTTPS
// data plane does: the accepted, delta and documents messages are published to MQTT
// subscribers, so devices get the delta. It returns the new version or the rejection.
func (c *console) update(id shadowstate.ID, payload []byte) (version int64, rejected *shadowstate.Error) {
	c.srv.shadow.apply(id, shadowstate.OpUpdate, payload, func(kind shadowstate.Kind, msg any) {
		if kind == shadowstate.Rejected {
			rejected = msg.(*shadowstate.Error)
			return
		}
		if a, ok := msg.(*shadowstate.UpdateAccepted); ok {
			version = a.Version
		}
		data, err := json.Marshal(msg)
		if err != nil { // cannot happen for the message types of shadowstate
			c.srv.opts.Logger.Error("shadow reply does not encode", "shadow", id, "kind", kind, "error", err)
			return
		}
		topic := id.Topic(shadowstate.OpUpdate, kind)
		c.srv.shadow.history.observe(consoleWriter, topic, data)
		if err := c.srv.broker.Publish(topic, data, false, 1); err != nil {
			c.srv.opts.Logger.Error("shadow message not published", "shadow", id, "kind", kind, "error", err)
		}
	})
	return version, rejected
}

// parseDesiredEdit decodes an edit's body: a JSON object, or null (returned as a nil
// Object). Anything else is answered with an error saying where it went wrong.
func parseDesiredEdit(body []byte) (shadowstate.Object, editResult) {
	var probe any
	if err := json.Unmarshal(body, &probe); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			line, col := lineCol(body, syn.Offset-1) // Offset counts the offending byte
			off := syn.Offset
			return nil, editResult{Error: fmt.Sprintf("Invalid JSON at line %d, column %d: %s", line, col, syn.Error()), Offset: &off}
		}
		return nil, editResult{Error: "Invalid JSON: " + err.Error()}
	}
	var v any
	if err := shadowstate.Unmarshal(body, &v); err != nil {
		return nil, editResult{Error: "Invalid JSON: " + err.Error()}
	}
	switch v := v.(type) {
	case nil:
		return nil, editResult{}
	case shadowstate.Object:
		return v, editResult{}
	}
	return nil, editResult{Error: "Desired state must be a JSON object, such as {\"on\": true} (or null to clear it)."}
}

// desiredPatch returns the desired section of an update that turns cur into next:
// next's values that differ from cur's, objects patched key by key, and null for
// every key of cur that next drops.
func desiredPatch(cur, next shadowstate.Object) shadowstate.Object {
	patch := shadowstate.Object{}
	for k := range cur {
		if _, ok := next[k]; !ok {
			patch[k] = nil
		}
	}
	for k, v := range next {
		old, had := cur[k]
		oldObj, oldIsObj := old.(shadowstate.Object)
		newObj, newIsObj := v.(shadowstate.Object)
		switch {
		case had && oldIsObj && newIsObj:
			if sub := desiredPatch(oldObj, newObj); len(sub) > 0 {
				patch[k] = sub
			}
		case had && jsonEqual(old, v):
		default:
			patch[k] = v
		}
	}
	return patch
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// lineCol turns the index of a byte of data into a 1-based line and column.
func lineCol(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = 1 + strings.Count(string(before), "\n")
	col = int(off) - strings.LastIndexByte(string(before), '\n')
	return line, col
}

// consoleShadowID reads the shadow a request names: query parameters thing and name.
func consoleShadowID(r *http.Request) (shadowstate.ID, error) {
	q := r.URL.Query()
	id := shadowstate.ID{Thing: q.Get("thing"), Name: q.Get("name")}
	if err := id.Validate(); err != nil {
		return id, fmt.Errorf("invalid shadow: %w", err)
	}
	return id, nil
}

func consoleShadowURL(path string, id shadowstate.ID) string {
	q := url.Values{"thing": {id.Thing}}
	if id.Name != "" {
		q.Set("name", id.Name)
	}
	return path + "?" + q.Encode()
}

// indentJSON is v as indented JSON, "" for an empty object.
func indentJSON(o shadowstate.Object) string {
	if len(o) == 0 {
		return ""
	}
	data, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return fmt.Sprint(o)
	}
	return string(data)
}

// flattenMeta lists the leaves of a metadata tree with their timestamps, by path.
func flattenMeta(section string, meta shadowstate.Object) []metaRow {
	if len(meta) == 0 {
		return nil
	}
	data, err := json.Marshal(meta)
	if err != nil {
		return nil
	}
	var tree any
	if err := shadowstate.Unmarshal(data, &tree); err != nil {
		return nil
	}
	var rows []metaRow
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case shadowstate.Object:
			if ts, ok := v["timestamp"].(json.Number); ok && len(v) == 1 {
				n, _ := ts.Int64()
				rows = append(rows, metaRow{Section: section, Path: path, At: formatUnix(n)})
				return
			}
			for k, e := range v {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(p, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk("", tree)
	slices.SortFunc(rows, func(a, b metaRow) int { return strings.Compare(a.Path, b.Path) })
	return rows
}

func formatUnix(sec int64) string {
	return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04:05Z") + fmt.Sprintf(" (%d)", sec)
}

// consoleHub passes what changed to every open event stream.
type consoleHub struct {
	mu   sync.Mutex
	subs map[*consoleSub]struct{}
}

// consoleSub is one event stream's pending changes: they coalesce while the stream
// writes, so a busy server never queues more than maxPendingShadowEvents per stream.
type consoleSub struct {
	wake chan struct{} // capacity 1: there is something to send

	mu      sync.Mutex
	shadows map[shadowstate.ID]struct{}
	all     bool // too many shadows changed to name them
	clients bool
}

func (h *consoleHub) add() (*consoleSub, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= maxConsoleStreams {
		return nil, false
	}
	s := &consoleSub{wake: make(chan struct{}, 1), shadows: make(map[shadowstate.ID]struct{})}
	h.subs[s] = struct{}{}
	return s, true
}

func (h *consoleHub) remove(s *consoleSub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

func (h *consoleHub) each(fn func(s *consoleSub)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.mu.Lock()
		fn(s)
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// shadowChanged tells every stream that shadow id changed. It never blocks.
func (h *consoleHub) shadowChanged(id shadowstate.ID) {
	h.each(func(s *consoleSub) {
		switch {
		case s.all:
		case len(s.shadows) >= maxPendingShadowEvents:
			s.all, s.shadows = true, make(map[shadowstate.ID]struct{})
		default:
			s.shadows[id] = struct{}{}
		}
	})
}

// clientsChanged tells every stream that a client connected, disconnected,
// subscribed or unsubscribed. It never blocks.
func (h *consoleHub) clientsChanged() {
	h.each(func(s *consoleSub) { s.clients = true })
}

// take returns and clears what s has pending, as server-sent events.
func (s *consoleSub) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	if s.all {
		b.WriteString("event: shadow\ndata: {\"all\":true}\n\n")
	}
	for id := range s.shadows {
		data, _ := json.Marshal(struct {
			Thing string `json:"thing"`
			Name  string `json:"name"`
		}{id.Thing, id.Name})
		fmt.Fprintf(&b, "event: shadow\ndata: %s\n\n", data)
	}
	if s.clients {
		b.WriteString("event: clients\ndata: {}\n\n")
	}
	s.all, s.clients = false, false
	clear(s.shadows)
	return b.String()
}

// events streams server-sent events to a page: "shadow" with the thing and name of a
// shadow that changed (or "all"), "clients" when the connected clients or their
// subscriptions changed. Pages then fetch themselves again.
func (c *console) events(w http.ResponseWriter, r *http.Request) {
	sub, ok := c.hub.add()
	if !ok {
		http.Error(w, "too many console pages open", http.StatusServiceUnavailable)
		return
	}
	defer c.hub.remove(sub)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	send := func(s string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(consoleWriteTimeout))
		if _, err := io.WriteString(w, s); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("retry: 1000\n: connected\n\n") {
		return
	}
	tick := time.NewTicker(consoleKeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if !send(": keep-alive\n\n") {
				return
			}
		case <-sub.wake:
			if ev := sub.take(); ev != "" && !send(ev) {
				return
			}
		}
	}
}
