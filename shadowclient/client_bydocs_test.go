package shadowclient_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/shadowsync/shadowsync/internal/testserver"
	"github.com/shadowsync/shadowsync/localiot"
	"github.com/shadowsync/shadowsync/shadowclient"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// UpdateByDocuments is accepted by the documents message carrying its clientToken,
// with only /update/rejected subscribed for it, and a stale version is answered 409.
func TestClientUpdateByDocuments(t *testing.T) {
	for _, name := range []string{"", "cfg"} {
		t.Run("shadow="+name, func(t *testing.T) {
			srv := testserver.Start(t, localiot.Options{})
			c := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{Wildcards: shadowclient.WildcardsNever})
			h := mustShadow(t, c, "Doc-1", name)
			if _, err := h.OnDocuments(t.Context(), func(context.Context, *shadowstate.DocumentsMessage) {}, shadowclient.StateOnly()); err != nil {
				t.Fatal(err)
			}
			// Another client creates the shadow, so that this one never needs
			// /update/accepted.
			app := newClient(t, dial(t, srv.Endpoints().Plain, nil), shadowclient.Options{})
			first, err := mustShadow(t, app, "Doc-1", name).UpdateReported(t.Context(), map[string]any{"n": 1})
			if err != nil {
				t.Fatal(err)
			}
			never := func(*shadowstate.DocumentsMessage) bool {
				t.Error("a message with our token was tested by content")
				return false
			}
			acc, err := h.UpdateByDocuments(t.Context(), shadowstate.StateUpdate{Reported: []byte(`{"n":2}`)}, first.Version, never)
			if err != nil || acc.Version != first.Version+1 || acc.ClientToken == "" {
				t.Fatalf("UpdateByDocuments = %+v, %v; want version %d", acc, err, first.Version+1)
			}
			_, err = h.UpdateByDocuments(t.Context(), shadowstate.StateUpdate{Reported: []byte(`{"n":3}`)}, first.Version, never)
			if rej := (*shadowstate.Error)(nil); !errors.As(err, &rej) || rej.Code != 409 {
				t.Fatalf("stale UpdateByDocuments: %v; want 409", err)
			}
			doc, err := h.Get(t.Context())
			if err != nil || doc.Version != first.Version+1 || fmt.Sprint(doc.State.Reported["n"]) != "2" {
				t.Fatalf("shadow after the reports: %+v, %v", doc, err)
			}
			id := h.ID()
			held := c.HeldFilters()
			for _, f := range []string{id.Topic(shadowstate.OpUpdate, shadowstate.Documents), id.Topic(shadowstate.OpUpdate, shadowstate.Rejected)} {
				if !slices.Contains(held, f) {
					t.Errorf("filters %v lack %s", held, f)
				}
			}
			if f := id.Topic(shadowstate.OpUpdate, shadowstate.Accepted); slices.Contains(held, f) {
				t.Errorf("filters %v hold %s, which UpdateByDocuments does not need", held, f)
			}
		})
	}
}
