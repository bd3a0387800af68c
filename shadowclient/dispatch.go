package shadowclient

import (
	"context"

	"github.com/shadowsync/shadowsync/internal/clienttoken"

	"github.com/shadowsync/shadowsync/shadowstate"
	"github.com/shadowsync/shadowsync/transport"
)

// dispatch receives every message on the client's filters and routes it by topic:
// replies to the request waiting for their clientToken, deltas and documents to the
// callbacks of exactly that shadow. Anything malformed is logged and dropped. In a
// sharing Pool, a message about a thing another member owns is that member's: it
// dispatches it, on this goroutine, as if it had come on its own connection.
func (c *Client) dispatch(ctx context.Context, m transport.Message) {
	id, op, kind, ok := shadowstate.ParseTopic(m.Topic)
	if !ok {
		c.log.Warn("message on a shadow filter with a topic that is not a shadow reply", "topic", m.Topic)
		return
	}
	owner := c.ownerOf(id.Thing)
	if owner != c && owner.isClosed() {
		return // as a closed client's own filters are gone, so is what it would receive
	}
	owner.dispatchOwn(ctx, m, id, op, kind)
}

// dispatchOwn dispatches a message about one of the client's own shadows.
func (c *Client) dispatchOwn(ctx context.Context, m transport.Message, id shadowstate.ID, op shadowstate.Op, kind shadowstate.Kind) {
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
			c.confirmDocuments(h.id, &d)
			return
		}
		stateOnly = false // a callback wanting everything came meanwhile
	}
}

// confirmDocuments answers the UpdateByDocuments request whose outcome d is, if one
// waits: the request whose clientToken d carries, or, when d carries none, the request
// fenced at the version d moved the shadow from (see UpdateByDocuments). It runs after
// the documents callbacks, so a caller whose cache they feed finds it current.
func (c *Client) confirmDocuments(id shadowstate.ID, d *shadowstate.DocumentsMessage) {
	if d.ClientToken != "" {
		if p := c.claimDocs(id, d.ClientToken); p != nil {
			p.finish(reply{kind: shadowstate.Accepted, docs: d})
		}
		return
	}
	h := c.handle(id)
	if h == nil {
		return
	}
	for _, token := range h.fencedAt(d.Current.Version - 1) {
		p := c.claimDocs(id, token)
		if p == nil {
			continue
		}
		if p.docs.matches(d) {
			p.finish(reply{kind: shadowstate.Accepted, docs: d})
		} else {
			p.finish(reply{err: &shadowstate.Error{Code: 409, Message: shadowstate.MsgVersionConflict}})
		}
	}
}

// fencedAt returns the tokens of the UpdateByDocuments requests of h that expect
// version v.
func (h *Handle) fencedAt(v int64) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var tokens []string
	for token, p := range h.byDocs {
		if p.docs.version == v {
			tokens = append(tokens, token)
		}
	}
	return tokens
}

// claimDocs removes and returns the UpdateByDocuments request of token on id; nil
// when there is none (a request answered on /update/accepted waits for that reply).
func (c *Client) claimDocs(id shadowstate.ID, token string) *pendingRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[token]
	if p == nil || p.docs == nil || p.id != id || p.op != shadowstate.OpUpdate {
		return nil
	}
	delete(c.pending, token)
	return p
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
