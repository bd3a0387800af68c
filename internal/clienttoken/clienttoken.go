// Package clienttoken makes and finds the clientTokens that correlate a request of an
// AWS IoT MQTT API (Device Shadow, Jobs) with its reply. Both clients use it, so
// that their tokens have one form and the fast path that finds a token in a reply
// without decoding it stays in step with how tokens are made; WaitError gives their
// requests one way to say why they stopped waiting.
package clienttoken

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// MaxBytes is AWS IoT's limit on a clientToken, for the shadow and the jobs APIs.
const MaxBytes = 64

// New returns a fresh clientToken: 32 random lowercase hex digits, well within
// MaxBytes and unique across clients and processes.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Quick finds the clientToken of a reply without decoding it: the tokens New makes
// are hex digits, so they appear verbatim after the last "clientToken":" of the
// payload (AWS IoT and localiot write it after the state). It returns "" when it
// finds no such token; the caller then decodes the payload, since a token found
// this way may also be a value inside the state.
func Quick(payload []byte) string {
	const key = `"clientToken":"`
	i := bytes.LastIndex(payload, []byte(key))
	if i < 0 {
		return ""
	}
	rest := payload[i+len(key):]
	end := bytes.IndexByte(rest, '"')
	if end <= 0 || end > MaxBytes {
		return ""
	}
	for _, b := range rest[:end] {
		if !(b >= '0' && b <= '9' || b >= 'a' && b <= 'f') {
			return ""
		}
	}
	return string(rest[:end])
}

// WaitError says why a request stopped waiting for its reply, the same way for both
// clients: when the caller's own ctx ended, its error (context.Canceled or
// DeadlineExceeded); when only the client's own bound expired, errTimeout with how
// long it waited; anything else unchanged.
func WaitError(caller context.Context, err, errTimeout error, waited time.Duration) error {
	isCtx := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	if cerr := caller.Err(); cerr != nil && isCtx {
		return cerr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (waited %v)", errTimeout, waited)
	}
	return err
}
