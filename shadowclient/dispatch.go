package shadowclient

import (
	"context"

	"github.com/shadowsync/shadowsync/internal/clienttoken"

	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// dispatch receives every message on the client's filters and routes it by topic:
// replies to the request waiting for their clientToken, deltas and documents to the
// callbacks of exactly that shadow. Anything malformed is logged and dropped.
func (c *Client) dispatch(ctx context.Context, m transport.Message) {
	id, op, kind, ok := shadowstate.ParseTopic(m.Topic)
	if !ok {
		c.log.Warn("message on a shadow filter with a topic that is not a shadow reply", "topic", m.Topic)
		return
	}
	switch kind {
	case shadowstate.Accepted, shadowstate.Rejected:
		c.dispatchReply(id, op, kind, m)
	case shadowstate.DeltaKind:
		if h := c.handle(id); h != nil {
			c.dispatchDelta(ctx, h, m.Payload)
		}
	case shadowstate.Documents:
		if h := c.handle(id); h != nil {
			c.dispatchDocuments(ctx, h, m.Payload)
		}
	}
}

// dispatchReply hands a reply to the request waiting for it, if it is ours.
func (c *Client) dispatchReply(id shadowstate.ID, op shadowstate.Op, kind shadowstate.Kind, m transport.Message) {
	p, token := c.claim(id, op, clienttoken.Quick(m.Payload))
	if p == nil {
		// The quick look found nothing of ours; decode properly before deciding.
		full, err := shadowstate.ReplyToken(m.Payload)
		if err != nil || full == "" || full == token {
			return // not a reply to one of our requests
		}
		if p, token = c.claim(id, op, full); p == nil {
			c.log.Debug("reply to no request of ours ignored", "topic", m.Topic, "token", token)
			return // another client's request, or one that has timed out
		}
	}
	p.finish(reply{kind: kind, payload: m.Payload})
}

// dispatchDelta decodes a delta message and hands it to h's callbacks.
func (c *Client) dispatchDelta(ctx context.Context, h *Handle, payload []byte) {
	var d shadowstate.DeltaMessage
	if err := shadowstate.Unmarshal(payload, &d); err != nil || d.State == nil {
		c.log.Warn("malformed delta message dropped", "shadow", h.id, "error", err, "payload_bytes", len(payload))
		return
	}
	h.deliverDelta(ctx, &d)
}

// dispatchDocuments decodes a documents message, with only the current state when
// every callback of h asked for StateOnly, and hands it to h's callbacks.
func (c *Client) dispatchDocuments(ctx context.Context, h *Handle, payload []byte) {
	stateOnly := h.stateOnlyDocuments()
	for {
		var d shadowstate.DocumentsMessage
		var err error
		if stateOnly {
			err = shadowstate.UnmarshalDocumentsStateOnly(payload, &d)
		} else {
			err = shadowstate.Unmarshal(payload, &d)
		}
		if err != nil {
			c.log.Warn("malformed documents message dropped", "shadow", h.id, "error", err, "payload_bytes", len(payload))
			return
		}
		if h.deliverDocuments(ctx, &d, stateOnly) || !stateOnly {
			return
		}
		stateOnly = false // a callback wanting everything came meanwhile
	}
}

// claim removes and returns the request waiting for token if it is the one on id for
// op; nil otherwise.
func (c *Client) claim(id shadowstate.ID, op shadowstate.Op, token string) (*pendingRequest, string) {
	if token == "" {
		return nil, token
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[token]
	if p == nil || p.id != id || p.op != op {
		return nil, token
	}
	delete(c.pending, token)
	return p, token
}
