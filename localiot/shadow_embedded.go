package localiot

import (
	"fmt"
	"slices"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// attachShadowService runs the Device Shadow service inside the embedded broker: an
// inline subscription hands it every shadow request that passed the gate's policy,
// on the publishing client's own goroutine, and its replies are published through the
// broker's inline client at QoS 1, with no network hop.
func (s *Server) attachShadowService() error {
	publish := func(topic string, payload []byte) {
		if err := s.broker.Publish(topic, payload, false, 1); err != nil {
			s.opts.Logger.Error("shadow reply not published", "topic", topic, "error", err)
		}
	}
	for i, filter := range shadowRequestFilters {
		err := s.broker.Subscribe(filter, i+1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
			if isShadowWill(pk) {
				s.opts.Logger.Debug("last will on a shadow topic ignored, as AWS IoT does", "topic", pk.TopicName, "client", pk.Origin)
				return
			}
			s.shadow.handle(pk.TopicName, pk.Payload, s.shadow.recorder(pk.Origin, publish))
		})
		if err != nil {
			return fmt.Errorf("localiot: attach shadow service to %s: %w", filter, err)
		}
	}
	return nil
}

// Shadow returns the stored state of one shadow, as the service holds it: a shadow
// that was never created (or was deleted) has Exists false. It is meant for tests and
// tools that inspect the service directly; devices and apps use the MQTT topics.
func (s *Server) Shadow(id shadowstate.ID) (shadowstate.Shadow, error) {
	if err := id.Validate(); err != nil {
		return shadowstate.Shadow{}, err
	}
	return s.opts.Store.Load(id)
}

// willUserProperty marks a Last Will addressed to a shadow request topic. AWS IoT's
// shadow service ignores such wills while still delivering them to subscribers; the
// mark lets the embedded service tell them from ordinary requests.
var willUserProperty = packets.UserProperty{Key: "localiot-last-will", Val: "1"}

// willMarker is a broker hook that marks Last Will messages on shadow request topics.
// It provides nothing but OnWill, so it never takes part in authorisation.
type willMarker struct{ mqtt.HookBase }

func (*willMarker) ID() string { return "localiot-will-marker" }

func (*willMarker) Provides(b byte) bool { return b == mqtt.OnWill }

func (*willMarker) OnWill(_ *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	// Shaped like a request, valid names or not: the service would otherwise answer
	// a will with an invalid name with a 400 rejection.
	if _, _, _, ok := parseRequestTopic(will.TopicName); ok {
		will.User = append(slices.Clone(will.User), willUserProperty)
	}
	return will, nil
}

func isShadowWill(pk packets.Packet) bool {
	return slices.Contains(pk.Properties.User, willUserProperty)
}
