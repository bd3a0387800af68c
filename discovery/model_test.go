package discovery_test

import (
	"errors"
	"testing"

	"github.com/shadowsync/shadowsync/discovery"
)

// A response with two groups, in the shape AWS documents.
const twoGroups = `{"GGGroups":[
 {"GGGroupId":"g1","Cores":[
   {"thingArn":"arn:aws:iot:us-east-1:1:thing/core1","Connectivity":[
     {"Id":"lan","HostAddress":"192.168.1.2","PortNumber":8883,"Metadata":"office"},
     {"Id":"v6","HostAddress":"::1","PortNumber":8883}]},
   {"thingArn":"arn:aws:iot:us-east-1:1:thing/core2","Connectivity":[]}],
  "CAs":["-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n"]},
 {"GGGroupId":"g2","Cores":[{"thingArn":"arn:aws:iot:us-east-1:1:thing/core3","Connectivity":[
     {"Id":"x","HostAddress":"core3.local","PortNumber":443}]}],
  "CAs":["ca2a","ca2b"]}]}`

func TestModelHelpers(t *testing.T) {
	info, err := discovery.Parse([]byte(twoGroups))
	if err != nil {
		t.Fatal(err)
	}
	cores := info.Cores()
	if len(cores) != 3 || cores[0].ThingARN != "arn:aws:iot:us-east-1:1:thing/core1" || cores[2].GroupID != "g2" {
		t.Errorf("cores %+v", cores)
	}
	cas := info.CAs()
	if len(cas) != 3 || cas[0].GroupID != "g1" || cas[1] != (discovery.GroupCA{GroupID: "g2", PEM: "ca2a"}) {
		t.Errorf("CAs %+v", cas)
	}
	g, ok := info.Group("g1")
	if !ok || len(g.Cores) != 2 {
		t.Fatalf("group g1 %+v %v", g, ok)
	}
	if _, ok := info.Group("nope"); ok {
		t.Error("found group nope")
	}
	if m := info.GroupsByID(); len(m) != 2 || m["g2"].CAs[1] != "ca2b" {
		t.Errorf("by ID %+v", m)
	}
	core, ok := g.Core("arn:aws:iot:us-east-1:1:thing/core1")
	if !ok {
		t.Fatal("core1 not found")
	}
	lan, ok := core.ConnectivityByID("lan")
	if !ok || lan.Addr() != "192.168.1.2:8883" || lan.Metadata != "office" {
		t.Errorf("lan %+v", lan)
	}
	if v6, _ := core.ConnectivityByID("v6"); v6.Addr() != "[::1]:8883" || v6.Metadata != "" {
		t.Errorf("v6 %+v", v6)
	}
	if _, ok := core.ConnectivityByID("nope"); ok {
		t.Error("found connectivity nope")
	}
	cs := info.Candidates()
	if len(cs) != 3 || cs[1].Endpoint() != "mqtts://[::1]:8883" || cs[2].GroupID != "g2" || cs[2].CoreARN != "arn:aws:iot:us-east-1:1:thing/core3" {
		t.Errorf("candidates %+v", cs)
	}
	// The CAs here are not certificates: CertPool and Candidate.Config say so.
	if _, err := g.CertPool(); !errors.Is(err, discovery.ErrInvalidResponse) {
		t.Errorf("cert pool: %v", err)
	}
	if string(info.Raw) != twoGroups {
		t.Error("Raw is not the body")
	}
}

func TestParseRefusesOtherDocuments(t *testing.T) {
	for _, body := range []string{"", "[]", `{"GGGroups":{}}`, `{}`, `{"GGGroups":[{"Cores":[{"Connectivity":[{"PortNumber":"x"}]}]}]}`} {
		if _, err := discovery.Parse([]byte(body)); !errors.Is(err, discovery.ErrInvalidResponse) {
			t.Errorf("%q: %v", body, err)
		}
	}
	if info, err := discovery.Parse([]byte(`{"GGGroups":[]}`)); err != nil || len(info.Groups) != 0 {
		t.Errorf("empty: %+v %v", info, err)
	}
}
