package localiot

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/shadowsync/shadowsync/shadowstate"
)

type published struct {
	Topic   string
	Payload string
}

func collect(svc *shadowService, topic, payload string) ([]published, bool) {
	var out []published
	ok := svc.handle(topic, []byte(payload), func(t string, p []byte) {
		out = append(out, published{t, string(p)})
	})
	return out, ok
}

func fixedClock() time.Time { return time.Unix(1718000000, 0) }

func TestShadowServiceReplies(t *testing.T) {
	svc := newShadowService(&MemoryStore{}, fixedClock, slog.New(slog.DiscardHandler))
	prefix := "$aws/things/Pump-7/shadow/name/motor"

	got, ok := collect(svc, prefix+"/update", `{"state":{"desired":{"rpm":1200}},"clientToken":"c1"}`)
	if !ok {
		t.Fatal("update request not handled")
	}
	want := []published{
		{prefix + "/update/accepted", `{"state":{"desired":{"rpm":1200}},"metadata":{"desired":{"rpm":{"timestamp":1718000000}}},"version":1,"timestamp":1718000000,"clientToken":"c1"}`},
		{prefix + "/update/delta", `{"state":{"rpm":1200},"metadata":{"rpm":{"timestamp":1718000000}},"version":1,"timestamp":1718000000,"clientToken":"c1"}`},
		{prefix + "/update/documents", `{"previous":null,"current":{"state":{"desired":{"rpm":1200}},"metadata":{"desired":{"rpm":{"timestamp":1718000000}}},"version":1},"timestamp":1718000000,"clientToken":"c1"}`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("replies to update (-want +got):\n%s", diff)
	}

	got, _ = collect(svc, prefix+"/update", `{"state":{"desired":{"rpm":1}},"version":7,"clientToken":"c2"}`)
	want = []published{{prefix + "/update/rejected", `{"code":409,"message":"Version conflict","clientToken":"c2","timestamp":1718000000}`}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("replies to a conflicting update (-want +got):\n%s", diff)
	}

	got, _ = collect(svc, "$aws/things/Pump-7/shadow/get", ``)
	want = []published{{"$aws/things/Pump-7/shadow/get/rejected", `{"code":404,"message":"No shadow exists with name: 'Pump-7'"}`}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("classic and named shadows are not separate (-want +got):\n%s", diff)
	}

	got, _ = collect(svc, prefix+"/delete", `{"clientToken":"d"}`)
	want = []published{{prefix + "/delete/accepted", `{"version":1,"timestamp":1718000000,"clientToken":"d"}`}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("replies to delete (-want +got):\n%s", diff)
	}

	for _, topic := range []string{
		prefix + "/update/accepted", prefix + "/update/delta", "$aws/things/Pump-7/shadow",
		"$aws/things/bad name/shadow/frob", "sensors/Pump-7", "$aws/things/Pump-7/jobs/get",
	} {
		if got, ok := collect(svc, topic, `{"state":{}}`); ok || len(got) > 0 {
			t.Errorf("%s was handled as a request: %v", topic, got)
		}
	}

	// A request naming an invalid thing or shadow is rejected with 400.
	for topic, msg := range map[string]string{
		"$aws/things/bad name/shadow/update":          msgInvalidThingName,
		"$aws/things/Pump-7/shadow/name/a.b/get":      msgInvalidShadowName,
		"$aws/things/Pump-7/shadow/name//delete":      msgInvalidShadowName,
		"$aws/things/Pump-7/shadow/name/$package/get": "", // valid: '$' is allowed in shadow names
	} {
		got, ok := collect(svc, topic, `{"clientToken":"t"}`)
		if msg == "" {
			if !ok || len(got) != 1 || got[0].Topic != topic+"/rejected" || !strings.Contains(got[0].Payload, `"code":404`) {
				t.Errorf("%s: %v, want the usual 404 of a shadow that does not exist", topic, got)
			}
			continue
		}
		want := []published{{topic + "/rejected", `{"code":400,"message":"` + msg + `","clientToken":"t","timestamp":1718000000}`}}
		if diff := cmp.Diff(want, got); !ok || diff != "" {
			t.Errorf("%s (-want +got):\n%s", topic, diff)
		}
	}
}

func openBolt(t *testing.T, path string) *BoltStore {
	t.Helper()
	store, err := OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func TestShadowServiceStoreFailure(t *testing.T) {
	store := openBolt(t, filepath.Join(t.TempDir(), "shadows.db"))
	svc := newShadowService(store, fixedClock, slog.New(slog.DiscardHandler))
	collect(svc, "$aws/things/Blocked/shadow/update", `{"state":{"reported":{"a":0}}}`)
	store.Close() // every save now fails for real
	got, _ := collect(svc, "$aws/things/Blocked/shadow/update", `{"state":{"reported":{"a":1}},"clientToken":"s1"}`)
	want := []published{{"$aws/things/Blocked/shadow/update/rejected", `{"code":500,"message":"Internal service failure","clientToken":"s1","timestamp":1718000000}`}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("a failed save (-want +got):\n%s", diff)
	}
	if s, _ := store.Load(shadowstate.ID{Thing: "Blocked"}); s.Version != 1 {
		t.Errorf("the update is in the store although its save failed: version %d", s.Version)
	}
}

func TestBoltStoreSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "shadows.db")
	store, err := OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	svc := newShadowService(store, fixedClock, slog.New(slog.DiscardHandler))
	for i := range 3 {
		collect(svc, "$aws/things/t1/shadow/update", fmt.Sprintf(`{"state":{"desired":{"n":%d},"reported":{"n":0}}}`, i))
	}
	collect(svc, "$aws/things/t1/shadow/name/cfg/update", `{"state":{"reported":{"mode":"eco"}}}`)
	collect(svc, "$aws/things/t2/shadow/update", `{"state":{"reported":{"x":1}}}`)
	collect(svc, "$aws/things/t2/shadow/delete", ``)
	if _, err := OpenBoltStore(path); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("a second open of a store in use gave %v", err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	reopened := openBolt(t, path)
	for _, id := range []shadowstate.ID{{Thing: "t1"}, {Thing: "t1", Name: "cfg"}, {Thing: "t2"}} {
		before, _ := store.Load(id)
		after, _ := reopened.Load(id)
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("%v changed across a restart (-before +after):\n%s", id, diff)
		}
	}
	svc = newShadowService(reopened, fixedClock, slog.New(slog.DiscardHandler))
	got, _ := collect(svc, "$aws/things/t1/shadow/get", `{"clientToken":"g"}`)
	if len(got) != 1 || !strings.Contains(got[0].Payload, `"version":3`) || !strings.Contains(got[0].Payload, `"delta":{"n":2}`) {
		t.Errorf("get after restart: %v", got)
	}
	got, _ = collect(svc, "$aws/things/t2/shadow/update", `{"state":{"reported":{"x":2}}}`)
	if len(got) == 0 || !strings.Contains(got[0].Payload, `"version":3`) {
		t.Errorf("a shadow deleted before the restart did not continue its version: %v", got)
	}
}

func TestOpenBoltStoreRefusesBadFiles(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "shadows.db")
	if err := os.WriteFile(bad, []byte("this is not a bbolt database, not even close to one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBoltStore(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a corrupt store gave %v, want an error naming %s", err, bad)
	}
}

func TestShadowServiceOrdersRepliesPerShadow(t *testing.T) {
	svc := newShadowService(&MemoryStore{}, time.Now, slog.New(slog.DiscardHandler))
	const writers, each = 8, 50
	var mu sync.Mutex
	var versions []int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				svc.handle("$aws/things/busy/shadow/update", fmt.Appendf(nil, `{"state":{"reported":{"w%d":%d}}}`, w, i), func(topic string, p []byte) {
					if !strings.HasSuffix(topic, "/accepted") {
						return
					}
					var m shadowstate.UpdateAccepted
					if err := json.Unmarshal(p, &m); err != nil {
						t.Error(err)
					}
					mu.Lock()
					versions = append(versions, m.Version)
					mu.Unlock()
				})
			}
		})
	}
	wg.Wait()
	if len(versions) != writers*each {
		t.Fatalf("%d accepted replies, want %d", len(versions), writers*each)
	}
	for i, v := range versions {
		if v != int64(i+1) {
			t.Fatalf("reply %d carries version %d: replies left out of version order", i, v)
		}
	}
}
