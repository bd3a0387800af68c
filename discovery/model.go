package discovery

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
)

// Info is a discovery response: every Greengrass group the thing belongs to, each
// with its cores and the CAs that signed their server certificates. It is the AWS
// IoT Device SDK for Python v1's DiscoveryInfo. Groups, cores and connectivity
// entries keep the order of the response.
type Info struct {
	// Groups are the response's GGGroups.
	Groups []Group `json:"GGGroups"`
	// Raw is the response body as received (the Python SDK's rawJson), for fields
	// this model does not carry. Parse sets it; it is not part of the JSON encoding.
	Raw []byte `json:"-"`
}

// Group is one Greengrass group of a discovery response (GroupConnectivityInfo in the
// Python SDK): its cores and the group CA certificates a device uses to verify them.
type Group struct {
	// ID is the group's GGGroupId.
	ID string `json:"GGGroupId"`
	// Cores are the group's Greengrass cores.
	Cores []Core `json:"Cores"`
	// CAs are the group's CA certificates, each a PEM string.
	CAs []string `json:"CAs"`
}

// Core is one Greengrass core of a group (CoreConnectivityInfo in the Python SDK):
// the addresses it can be reached at, in the order to try them.
type Core struct {
	// ThingARN is the core's thing ARN (thingArn).
	ThingARN string `json:"thingArn"`
	// GroupID is the ID of the group the core was listed in. Parse fills it in; it
	// is not part of the JSON encoding.
	GroupID string `json:"-"`
	// Connectivity are the core's addresses.
	Connectivity []Connectivity `json:"Connectivity"`
}

// Connectivity is one address of a core (ConnectivityInfo in the Python SDK).
type Connectivity struct {
	// ID names the entry within its core (Id).
	ID string `json:"Id"`
	// HostAddress is an IP address or host name (HostAddress).
	HostAddress string `json:"HostAddress"`
	// PortNumber is the core's MQTT-over-TLS port (PortNumber).
	PortNumber int `json:"PortNumber"`
	// Metadata is free text set with the connectivity entry; "" when absent.
	Metadata string `json:"Metadata,omitempty"`
}

// GroupCA is a group CA certificate together with the group it belongs to: one
// (groupId, ca) pair of the Python SDK's getAllCas.
type GroupCA struct {
	// GroupID is the group the CA belongs to.
	GroupID string
	// PEM is the CA certificate in PEM.
	PEM string
}

// Parse decodes a discovery response body. It fails with an error wrapping
// ErrInvalidResponse when the body is not JSON of the documented shape: an object
// with a GGGroups array. Missing fields inside a group are left empty; Connect
// reports unusable entries when it tries them.
func Parse(body []byte) (*Info, error) {
	var doc struct {
		Groups *[]Group `json:"GGGroups"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidResponse, err)
	}
	if doc.Groups == nil {
		return nil, fmt.Errorf("%w: no GGGroups", ErrInvalidResponse)
	}
	info := &Info{Groups: *doc.Groups, Raw: append([]byte(nil), body...)}
	for gi := range info.Groups {
		g := &info.Groups[gi]
		for ci := range g.Cores {
			g.Cores[ci].GroupID = g.ID
		}
	}
	return info, nil
}

// Cores returns every core of every group, group by group: the Python SDK's
// getAllCores, for a device that does not care which group a core is in.
func (i *Info) Cores() []Core {
	var cores []Core
	for _, g := range i.Groups {
		cores = append(cores, g.Cores...)
	}
	return cores
}

// CAs returns every group CA with its group ID, group by group: the Python SDK's
// getAllCas.
func (i *Info) CAs() []GroupCA {
	var cas []GroupCA
	for _, g := range i.Groups {
		for _, ca := range g.CAs {
			cas = append(cas, GroupCA{GroupID: g.ID, PEM: ca})
		}
	}
	return cas
}

// Group returns the group with the given ID: the Python SDK's
// toObjectAtGroupLevel()[id], for a device that knows which group it wants.
func (i *Info) Group(id string) (*Group, bool) {
	for gi := range i.Groups {
		if i.Groups[gi].ID == id {
			return &i.Groups[gi], true
		}
	}
	return nil, false
}

// GroupsByID returns the groups keyed by ID: the Python SDK's toObjectAtGroupLevel.
// The pointers point into i.Groups.
func (i *Info) GroupsByID() map[string]*Group {
	m := make(map[string]*Group, len(i.Groups))
	for gi := range i.Groups {
		m[i.Groups[gi].ID] = &i.Groups[gi]
	}
	return m
}

// Core returns the group's core with the given thing ARN: the Python SDK's
// getCoreConnectivityInfo.
func (g *Group) Core(thingARN string) (*Core, bool) {
	for ci := range g.Cores {
		if g.Cores[ci].ThingARN == thingARN {
			return &g.Cores[ci], true
		}
	}
	return nil, false
}

// CertPool returns the group's CAs as a certificate pool, the roots that verify its
// cores. It fails with an error wrapping ErrInvalidResponse when the group has no CA
// or one that is not a PEM certificate.
func (g *Group) CertPool() (*x509.CertPool, error) {
	if len(g.CAs) == 0 {
		return nil, fmt.Errorf("%w: group %s has no CA", ErrInvalidResponse, g.ID)
	}
	pool := x509.NewCertPool()
	for i, ca := range g.CAs {
		if !pool.AppendCertsFromPEM([]byte(ca)) {
			return nil, fmt.Errorf("%w: group %s: CAs[%d] holds no PEM certificate", ErrInvalidResponse, g.ID, i)
		}
	}
	return pool, nil
}

// ConnectivityByID returns the core's connectivity entry with the given ID: the
// Python SDK's getConnectivityInfo.
func (c *Core) ConnectivityByID(id string) (Connectivity, bool) {
	for _, e := range c.Connectivity {
		if e.ID == id {
			return e, true
		}
	}
	return Connectivity{}, false
}

// Addr returns HostAddress:PortNumber, bracketing an IPv6 address.
func (c Connectivity) Addr() string {
	return net.JoinHostPort(c.HostAddress, strconv.Itoa(c.PortNumber))
}
