package jobstate

import (
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// AWS IoT Jobs' limits that the device API checks.
const (
	// MaxStatusDetails is how many name/value pairs statusDetails may hold.
	MaxStatusDetails = 10
	// MaxStatusDetailKeyLen is the longest statusDetails name, in characters; names
	// are 1 or more of a-z, A-Z, 0-9, ':', '_' and '-'.
	MaxStatusDetailKeyLen = 128
	// MaxStatusDetailValueLen is the longest statusDetails value, in characters;
	// values are 1 or more characters, none of them a control or format character.
	MaxStatusDetailValueLen = 1024
	// MinStepTimeoutMinutes and MaxStepTimeoutMinutes bound stepTimeoutInMinutes
	// and a job's in-progress timeout: 1 minute to 7 days.
	MinStepTimeoutMinutes = 1
	MaxStepTimeoutMinutes = 10080
	// StepTimeoutCancel as stepTimeoutInMinutes cancels the running step timer.
	StepTimeoutCancel = -1
	// MaxJobDocumentBytes is the largest job document.
	MaxJobDocumentBytes = 32 * 1024
	// MaxJobIDLen is the longest job ID; IDs are 1 or more of a-z, A-Z, 0-9, '_'
	// and '-'.
	MaxJobIDLen = 64
	// MaxThingNameLen is the longest thing name; names are 1 or more of a-z, A-Z,
	// 0-9, ':', '_' and '-'.
	MaxThingNameLen = 128
	// MaxPendingListed is how many executions get/accepted and notify list, together
	// (AWS's limit without a scheduling configuration).
	MaxPendingListed = 10
)

// NextJobID is the job ID that names a thing's next pending execution in a describe
// request.
const NextJobID = "$next"

// ValidateJobID returns an error unless id is a valid job ID.
func ValidateJobID(id string) error {
	if id == "" || len(id) > MaxJobIDLen {
		return fmt.Errorf("jobId %q: want 1 to %d characters", id, MaxJobIDLen)
	}
	for _, r := range id {
		if !isWordRune(r) && r != '_' && r != '-' {
			return fmt.Errorf("jobId %q: only a-z, A-Z, 0-9, '_' and '-' are allowed", id)
		}
	}
	return nil
}

// ValidateThingName returns an error unless name is a valid thing name.
func ValidateThingName(name string) error {
	if name == "" || len(name) > MaxThingNameLen {
		return fmt.Errorf("thing name %q: want 1 to %d characters", name, MaxThingNameLen)
	}
	for _, r := range name {
		if !isWordRune(r) && r != ':' && r != '_' && r != '-' {
			return fmt.Errorf("thing name %q: only a-z, A-Z, 0-9, ':', '_' and '-' are allowed", name)
		}
	}
	return nil
}

// ValidateDocument returns an error unless doc is a JSON object of at most
// MaxJobDocumentBytes.
func ValidateDocument(doc json.RawMessage) error {
	if len(doc) > MaxJobDocumentBytes {
		return fmt.Errorf("job document is %d bytes: at most %d allowed", len(doc), MaxJobDocumentBytes)
	}
	var obj map[string]json.RawMessage
	if !json.Valid(doc) || json.Unmarshal(doc, &obj) != nil || obj == nil {
		return fmt.Errorf("job document is not a JSON object")
	}
	return nil
}

// ValidateStatusDetails returns an error unless d fits AWS's limits on statusDetails.
func ValidateStatusDetails(d map[string]string) error {
	if len(d) > MaxStatusDetails {
		return fmt.Errorf("statusDetails has %d entries: at most %d allowed", len(d), MaxStatusDetails)
	}
	for k, v := range d {
		if k == "" || utf8.RuneCountInString(k) > MaxStatusDetailKeyLen {
			return fmt.Errorf("statusDetails name %q: want 1 to %d characters", k, MaxStatusDetailKeyLen)
		}
		for _, r := range k {
			if !isWordRune(r) && r != ':' && r != '_' && r != '-' {
				return fmt.Errorf("statusDetails name %q: only a-z, A-Z, 0-9, ':', '_' and '-' are allowed", k)
			}
		}
		if v == "" || utf8.RuneCountInString(v) > MaxStatusDetailValueLen {
			return fmt.Errorf("statusDetails value of %q: want 1 to %d characters", k, MaxStatusDetailValueLen)
		}
		for _, r := range v {
			if unicode.Is(unicode.C, r) {
				return fmt.Errorf("statusDetails value of %q: control and format characters are not allowed", k)
			}
		}
	}
	return nil
}

// ValidateStepTimeout returns an error unless m is nil or a valid
// stepTimeoutInMinutes: MinStepTimeoutMinutes to MaxStepTimeoutMinutes, or
// StepTimeoutCancel.
func ValidateStepTimeout(m *int64) error {
	if m == nil || *m == StepTimeoutCancel || *m >= MinStepTimeoutMinutes && *m <= MaxStepTimeoutMinutes {
		return nil
	}
	return fmt.Errorf("stepTimeoutInMinutes %d: want %d to %d, or %d to cancel the step timer", *m, MinStepTimeoutMinutes, MaxStepTimeoutMinutes, StepTimeoutCancel)
}

func isWordRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// decode parses payload into v, which must be a pointer to one of the request types.
// An empty payload counts as {}. It returns the rejection for a payload that is not
// JSON (InvalidJson) or whose fields have the wrong types (InvalidRequest); the
// clientToken is echoed when it could be read.
func decode(payload []byte, v any, now int64) *ErrorResponse {
	if len(payload) == 0 {
		return nil
	}
	if !utf8.Valid(payload) || !json.Valid(payload) {
		return &ErrorResponse{Code: CodeInvalidJSON, Message: MsgInvalidJSON, Timestamp: now}
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return &ErrorResponse{Code: CodeInvalidRequest, Message: "Invalid request: " + err.Error(), ClientToken: tokenOf(payload), Timestamp: now}
	}
	return nil
}

// tokenOf returns the clientToken of a payload when it is a string, else "".
func tokenOf(payload []byte) string {
	var r struct {
		ClientToken any `json:"clientToken"`
	}
	if json.Unmarshal(payload, &r) != nil {
		return ""
	}
	t, _ := r.ClientToken.(string)
	return t
}

// TokenOf returns the clientToken of a request payload when it has one, for replies
// made without applying the request (a throttled request, a store failure); "" else.
func TokenOf(payload []byte) string { return tokenOf(payload) }
