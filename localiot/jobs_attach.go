package localiot

import (
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/shadowsync/shadowsync/jobstate"
)

// jobsFilter brings every publish under any thing's jobs namespace to the Jobs
// service: requests, and topics that map to no operation (answered InvalidTopic).
// The service's own notify and notify-next come back through it too, and are ignored.
const jobsFilter = "$aws/things/+/jobs/#"

// jobsSubscriptionID identifies the Jobs service's inline subscription; the shadow
// service's use 1 and 2.
const jobsSubscriptionID = 100

// attachJobsService runs the Jobs service inside the embedded broker. Requests arrive
// through an inline subscription, after the gate's policy, on the publishing client's
// goroutine. As on AWS, the accepted or rejected reply goes to the requesting client
// alone, whether or not it subscribed to the reply topic, written straight to its
// connection (at QoS 0); notify and notify-next are published through the broker at
// QoS 1 to whoever subscribed.
func (s *Server) attachJobsService() error {
	s.jobs.mu.Lock()
	s.jobs.publish = func(topic string, payload []byte) {
		if err := s.broker.Publish(topic, payload, false, 1); err != nil {
			s.opts.Logger.Error("jobs event not published", "topic", topic, "error", err)
		}
	}
	s.jobs.mu.Unlock()
	err := s.broker.Subscribe(jobsFilter, jobsSubscriptionID, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		t, ok := jobstate.ParseTopic(pk.TopicName)
		if !ok || t.Kind != jobstate.KindRequest && t.Kind != jobstate.KindInvalid {
			return // the service's own messages, or no valid thing name
		}
		if pk.Origin == "" || pk.Origin == mqtt.InlineClientId {
			return // no client to answer
		}
		s.jobs.handle(t, pk.Payload, func(topic string, payload []byte) { s.replyTo(pk.Origin, topic, payload) })
	})
	if err != nil {
		return fmt.Errorf("localiot: attach jobs service to %s: %w", jobsFilter, err)
	}
	return nil
}

// replyTo writes a reply to the client with the given ID alone, at QoS 0.
func (s *Server) replyTo(clientID, topic string, payload []byte) {
	cl, ok := s.broker.Clients.Get(clientID)
	if !ok || cl.Closed() {
		s.opts.Logger.Debug("jobs reply dropped: the requester is gone", "client", clientID, "topic", topic)
		return
	}
	err := cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     payload,
	})
	if err != nil {
		s.opts.Logger.Debug("jobs reply not written", "client", clientID, "topic", topic, "error", err)
	}
}
