package shadowstate

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// t0 is when the requests that set a case up are applied; each case's request runs at
// t0+100 unless it says otherwise. $T0 and $T1 in expected JSON stand for the two.
const t0 = 1718000000

type step struct {
	op  Op
	req string
	at  int64 // seconds after t0
}

func upd(req string) step { return step{op: OpUpdate, req: req} }

type conformanceCase struct {
	name   string
	id     ID     // defaults to the classic shadow of thing "Pump-7"
	before []step // applied first; each must be accepted
	op     Op     // defaults to OpUpdate
	req    string
	at     int64 // seconds after t0; defaults to 100

	// A rejection: code, message and the exact */rejected message.
	code     int
	msg      string
	rejected string

	// An acceptance: the stored sections afterwards ("" = absent), the version, and the
	// exact messages published ("" = not checked, "none" = must not be published).
	desired, reported string
	version           int64
	accepted          string
	delta             string
	documents         string
}

var conformanceCases = []conformanceCase{
	// ---- merge and the accepted echo (docs/protocol.md#merging-an-update, #replies)
	{
		name:    "first update creates the shadow at version 1 and echoes only the request",
		req:     `{"state":{"desired":{"fan":"high"}},"clientToken":"req-42"}`,
		desired: `{"fan":"high"}`, version: 1,
		accepted:  `{"state":{"desired":{"fan":"high"}},"metadata":{"desired":{"fan":{"timestamp":$T1}}},"version":1,"timestamp":$T1,"clientToken":"req-42"}`,
		delta:     `{"state":{"fan":"high"},"metadata":{"fan":{"timestamp":$T1}},"version":1,"timestamp":$T1,"clientToken":"req-42"}`,
		documents: `{"previous":null,"current":{"state":{"desired":{"fan":"high"}},"metadata":{"desired":{"fan":{"timestamp":$T1}}},"version":1},"timestamp":$T1,"clientToken":"req-42"}`,
	},
	{
		name:    "update merges new keys and keeps the others",
		before:  []step{upd(`{"state":{"desired":{"fan":"high","led":"on"}}}`)},
		req:     `{"state":{"desired":{"mode":"auto"}}}`,
		desired: `{"fan":"high","led":"on","mode":"auto"}`, version: 2,
		accepted: `{"state":{"desired":{"mode":"auto"}},"metadata":{"desired":{"mode":{"timestamp":$T1}}},"version":2,"timestamp":$T1}`,
	},
	{
		name:    "nested objects merge key by key",
		before:  []step{upd(`{"state":{"desired":{"lights":{"color":{"r":255,"g":255,"b":255},"on":true}}}}`)},
		req:     `{"state":{"desired":{"lights":{"color":{"g":0}}}}}`,
		desired: `{"lights":{"color":{"r":255,"g":0,"b":255},"on":true}}`, version: 2,
	},
	{
		name:    "null deletes a key and the echo keeps the null with a timestamp",
		before:  []step{upd(`{"state":{"desired":{"fan":"low","mode":"eco"}}}`)},
		req:     `{"state":{"desired":{"fan":"high","mode":null}},"clientToken":"req-42"}`,
		desired: `{"fan":"high"}`, version: 2,
		accepted: `{"state":{"desired":{"fan":"high","mode":null}},"metadata":{"desired":{"fan":{"timestamp":$T1},"mode":{"timestamp":$T1}}},"version":2,"timestamp":$T1,"clientToken":"req-42"}`,
	},
	{
		name:     "null deletes a nested key and keeps its siblings",
		before:   []step{upd(`{"state":{"reported":{"net":{"ip":"10.0.0.2","mask":24}}}}`)},
		req:      `{"state":{"reported":{"net":{"mask":null}}}}`,
		reported: `{"net":{"ip":"10.0.0.2"}}`, version: 2,
	},
	{
		name:     "removing the last key of a nested object removes the object",
		before:   []step{upd(`{"state":{"reported":{"net":{"ip":"10.0.0.2"},"fw":"1.2"}}}`)},
		req:      `{"state":{"reported":{"net":{"ip":null}}}}`,
		reported: `{"fw":"1.2"}`, version: 2,
	},
	{
		name:     "removing every key of a section removes the section",
		before:   []step{upd(`{"state":{"desired":{"fan":"on"},"reported":{"fan":"on"}}}`)},
		req:      `{"state":{"desired":{"fan":null}}}`,
		reported: `{"fan":"on"}`, version: 2,
		documents: `{"previous":{"state":{"desired":{"fan":"on"},"reported":{"fan":"on"}},"metadata":{"desired":{"fan":{"timestamp":$T0}},"reported":{"fan":{"timestamp":$T0}}},"version":1},` +
			`"current":{"state":{"reported":{"fan":"on"}},"metadata":{"reported":{"fan":{"timestamp":$T0}}},"version":2},"timestamp":$T1}`,
	},
	{
		name:    "null for a key that is not there is accepted and still counts as a version",
		before:  []step{upd(`{"state":{"desired":{"fan":"on"}}}`)},
		req:     `{"state":{"desired":{"ghost":null}}}`,
		desired: `{"fan":"on"}`, version: 2,
	},
	{
		name:     "a null section clears it with its metadata and is echoed as null",
		before:   []step{upd(`{"state":{"desired":{"fan":"on"},"reported":{"fan":"off"}}}`)},
		req:      `{"state":{"desired":null}}`,
		reported: `{"fan":"off"}`, version: 2,
		accepted: `{"state":{"desired":null},"metadata":{"desired":{"timestamp":$T1}},"version":2,"timestamp":$T1}`,
		delta:    "none",
	},
	{
		name:     "state null clears both sections, keeps the shadow and bumps the version",
		before:   []step{upd(`{"state":{"desired":{"fan":"on"},"reported":{"fan":"off"}}}`)},
		req:      `{"state":null}`,
		version:  2,
		accepted: `{"state":null,"metadata":{"timestamp":$T1},"version":2,"timestamp":$T1}`,
		delta:    "none",
	},
	{
		name:     "get after state null finds an empty shadow, not a missing one",
		before:   []step{upd(`{"state":{"desired":{"fan":"on"}}}`), upd(`{"state":null}`)},
		op:       OpGet,
		req:      `{"clientToken":"g1"}`,
		version:  2,
		accepted: `{"state":{},"metadata":{},"version":2,"timestamp":$T1,"clientToken":"g1"}`,
	},
	{
		name:    "an empty state is accepted, changes nothing and bumps the version",
		before:  []step{upd(`{"state":{"desired":{"fan":"on"}}}`)},
		req:     `{"state":{}}`,
		desired: `{"fan":"on"}`, version: 2,
		accepted: `{"state":{},"metadata":{},"version":2,"timestamp":$T1}`,
	},
	{
		name:    "arrays are replaced whole, never merged element by element",
		before:  []step{upd(`{"state":{"desired":{"colors":["red","green","blue"]}}}`)},
		req:     `{"state":{"desired":{"colors":["white"]}}}`,
		desired: `{"colors":["white"]}`, version: 2,
	},
	{
		name:     "an object replaces a scalar and its metadata whole",
		before:   []step{upd(`{"state":{"reported":{"pos":7}}}`)},
		req:      `{"state":{"reported":{"pos":{"x":1,"y":2}}}}`,
		reported: `{"pos":{"x":1,"y":2}}`, version: 2,
	},
	{
		name:     "a scalar replaces an object whole",
		before:   []step{upd(`{"state":{"reported":{"pos":{"x":1,"y":2}}}}`)},
		req:      `{"state":{"reported":{"pos":"unknown"}}}`,
		reported: `{"pos":"unknown"}`, version: 2,
	},
	{
		name:    "a new object holding only nulls adds nothing",
		before:  []step{upd(`{"state":{"desired":{"fan":"on"}}}`)},
		req:     `{"state":{"desired":{"extra":{"a":null,"b":{"c":null}}}}}`,
		desired: `{"fan":"on"}`, version: 2,
	},
	{
		name:    "keys outside state are ignored",
		req:     `{"state":{"desired":{"fan":"on"}},"note":"hi","metadata":{"x":1}}`,
		desired: `{"fan":"on"}`, version: 1,
	},
	{
		name:    "both sections in one request",
		req:     `{"state":{"desired":{"fan":"on"},"reported":{"fan":"off","rpm":0}}}`,
		desired: `{"fan":"on"}`, reported: `{"fan":"off","rpm":0}`, version: 1,
		delta: `{"state":{"fan":"on"},"metadata":{"fan":{"timestamp":$T1}},"version":1,"timestamp":$T1}`,
	},
	{
		name:     "large integers keep their exact text",
		req:      `{"state":{"reported":{"serial":123456789012345678901234567890,"ratio":0.1}}}`,
		reported: `{"serial":123456789012345678901234567890,"ratio":0.1}`, version: 1,
		accepted: `{"state":{"reported":{"serial":123456789012345678901234567890,"ratio":0.1}},"metadata":{"reported":{"serial":{"timestamp":$T1},"ratio":{"timestamp":$T1}}},"version":1,"timestamp":$T1}`,
	},

	// ---- versions (docs/protocol.md#versions)
	{
		name:    "an update carrying the current version is applied",
		before:  []step{upd(`{"state":{"desired":{"a":1}}}`), upd(`{"state":{"desired":{"a":2}}}`)},
		req:     `{"state":{"desired":{"a":3}},"version":2}`,
		desired: `{"a":3}`, version: 3,
	},
	{
		name:   "an older version conflicts",
		before: []step{upd(`{"state":{"desired":{"a":1}}}`), upd(`{"state":{"desired":{"a":2}}}`)},
		req:    `{"state":{"desired":{"a":3}},"version":1,"clientToken":"c-9"}`,
		code:   409, msg: MsgVersionConflict,
		rejected: `{"code":409,"message":"Version conflict","clientToken":"c-9","timestamp":$T1}`,
	},
	{
		name:   "a newer version conflicts too",
		before: []step{upd(`{"state":{"desired":{"a":1}}}`)},
		req:    `{"state":{"desired":{"a":3}},"version":100}`,
		code:   409, msg: MsgVersionConflict,
	},
	{
		name:    "version 0 matches a shadow that does not exist yet",
		req:     `{"state":{"desired":{"a":1}},"version":0}`,
		desired: `{"a":1}`, version: 1,
	},
	{
		name: "version 1 conflicts with a shadow that does not exist yet",
		req:  `{"state":{"desired":{"a":1}},"version":1}`,
		code: 409, msg: MsgVersionConflict,
	},
	{
		name:    "get leaves the version alone",
		before:  []step{upd(`{"state":{"desired":{"a":1}}}`), {op: OpGet}, {op: OpGet, req: `{}`}},
		req:     `{"state":{"reported":{"a":1}}}`,
		desired: `{"a":1}`, reported: `{"a":1}`, version: 2,
		delta: "none",
	},
	{
		name:     "delete answers with the version at deletion",
		before:   []step{upd(`{"state":{"desired":{"a":1}}}`), upd(`{"state":{"desired":{"a":2}}}`)},
		op:       OpDelete,
		req:      `{"clientToken":"d-1","state":{"ignored":true}}`,
		version:  3,
		accepted: `{"version":2,"timestamp":$T1,"clientToken":"d-1"}`,
	},
	{
		name: "a shadow recreated after delete continues two past the deleted version",
		before: []step{
			upd(`{"state":{"desired":{"a":1}}}`), upd(`{"state":{"desired":{"a":2}}}`),
			upd(`{"state":{"desired":{"a":3}}}`), upd(`{"state":{"desired":{"a":4}}}`),
			{op: OpDelete},
		},
		req:     `{"state":{"desired":{"b":1}}}`,
		desired: `{"b":1}`, version: 6,
		documents: `{"previous":null,"current":{"state":{"desired":{"b":1}},"metadata":{"desired":{"b":{"timestamp":$T1}}},"version":6},"timestamp":$T1}`,
	},
	{
		name:    "a shadow recreated more than 48 hours after delete starts again at 1",
		before:  []step{upd(`{"state":{"desired":{"a":1}}}`), upd(`{"state":{"desired":{"a":2}}}`), {op: OpDelete}},
		at:      48*3600 + 1,
		req:     `{"state":{"desired":{"b":1}}}`,
		desired: `{"b":1}`, version: 1,
	},
	{
		name:    "a shadow recreated exactly 48 hours after delete still continues",
		before:  []step{upd(`{"state":{"desired":{"a":1}}}`), {op: OpDelete}},
		at:      48 * 3600,
		req:     `{"state":{"desired":{"b":1}}}`,
		desired: `{"b":1}`, version: 3,
	},
	{
		name: "get of a missing classic shadow names the thing",
		op:   OpGet,
		req:  `{"clientToken":"g-2"}`,
		code: 404, msg: "No shadow exists with name: 'Pump-7'",
		rejected: `{"code":404,"message":"No shadow exists with name: 'Pump-7'","clientToken":"g-2"}`,
	},
	{
		name: "get of a missing named shadow names the shadow",
		id:   ID{Thing: "Pump-7", Name: "motor"},
		op:   OpGet,
		code: 404, msg: "No shadow exists with name: 'motor'",
	},
	{
		name:   "get after delete finds nothing",
		before: []step{upd(`{"state":{"desired":{"a":1}}}`), {op: OpDelete}},
		op:     OpGet,
		code:   404, msg: "No shadow exists with name: 'Pump-7'",
	},
	{
		name:   "delete of a missing shadow is refused",
		before: []step{upd(`{"state":{"desired":{"a":1}}}`), {op: OpDelete}},
		op:     OpDelete,
		code:   404, msg: "No shadow exists with name: 'Pump-7'",
	},

	// ---- metadata (docs/protocol.md#metadata)
	{
		name:    "metadata is kept per leaf: each leaf has the time it was last written",
		before:  []step{upd(`{"state":{"desired":{"a":1,"b":{"c":1,"d":1}}}}`)},
		req:     `{"state":{"desired":{"b":{"d":2}}}}`,
		desired: `{"a":1,"b":{"c":1,"d":2}}`, version: 2,
		documents: `{"previous":{"state":{"desired":{"a":1,"b":{"c":1,"d":1}}},"metadata":{"desired":{"a":{"timestamp":$T0},"b":{"c":{"timestamp":$T0},"d":{"timestamp":$T0}}}},"version":1},` +
			`"current":{"state":{"desired":{"a":1,"b":{"c":1,"d":2}}},"metadata":{"desired":{"a":{"timestamp":$T0},"b":{"c":{"timestamp":$T0},"d":{"timestamp":$T1}}}},"version":2},"timestamp":$T1}`,
	},
	{
		name:     "array metadata has one entry per element and recurses into objects",
		req:      `{"state":{"reported":{"rgb":[255,0,{"alpha":1}]}}}`,
		reported: `{"rgb":[255,0,{"alpha":1}]}`, version: 1,
		accepted: `{"state":{"reported":{"rgb":[255,0,{"alpha":1}]}},"metadata":{"reported":{"rgb":[{"timestamp":$T1},{"timestamp":$T1},{"alpha":{"timestamp":$T1}}]}},"version":1,"timestamp":$T1}`,
	},

	// ---- delta (docs/protocol.md#the-delta, #replies)
	{
		name:    "no delta once reported catches up",
		before:  []step{upd(`{"state":{"desired":{"fan":"high"},"reported":{"fan":"low"}}}`)},
		req:     `{"state":{"reported":{"fan":"high"}}}`,
		desired: `{"fan":"high"}`, reported: `{"fan":"high"}`, version: 2,
		delta: "none",
	},
	{
		name:    "a reported-only update that leaves a difference publishes the delta with desired's timestamps",
		before:  []step{upd(`{"state":{"desired":{"fan":"high"}}}`)},
		req:     `{"state":{"reported":{"fan":"low"}},"clientToken":"dev-7"}`,
		desired: `{"fan":"high"}`, reported: `{"fan":"low"}`, version: 2,
		delta: `{"state":{"fan":"high"},"metadata":{"fan":{"timestamp":$T0}},"version":2,"timestamp":$T1,"clientToken":"dev-7"}`,
	},
	{
		name:    "the delta carries every differing key, not only the request's",
		before:  []step{upd(`{"state":{"desired":{"a":1,"b":2},"reported":{"a":0,"b":0}}}`)},
		req:     `{"state":{"desired":{"b":3}}}`,
		desired: `{"a":1,"b":3}`, reported: `{"a":0,"b":0}`, version: 2,
		delta: `{"state":{"a":1,"b":3},"metadata":{"a":{"timestamp":$T0},"b":{"timestamp":$T1}},"version":2,"timestamp":$T1}`,
	},
	{
		name:    "keys only in reported never appear in the delta",
		before:  []step{upd(`{"state":{"reported":{"temp":21,"fan":"low"}}}`)},
		req:     `{"state":{"desired":{"fan":"high"}}}`,
		delta:   `{"state":{"fan":"high"},"metadata":{"fan":{"timestamp":$T1}},"version":2,"timestamp":$T1}`,
		desired: `{"fan":"high"}`, reported: `{"temp":21,"fan":"low"}`, version: 2,
	},
	{
		name:    "desired written equal to reported publishes no delta",
		before:  []step{upd(`{"state":{"reported":{"fan":"low"}}}`)},
		req:     `{"state":{"desired":{"fan":"low"}}}`,
		delta:   "none",
		desired: `{"fan":"low"}`, reported: `{"fan":"low"}`, version: 2,
	},
	{
		name:    "a key deleted from reported but still desired is in the delta",
		before:  []step{upd(`{"state":{"desired":{"fan":"low"},"reported":{"fan":"low"}}}`)},
		req:     `{"state":{"reported":{"fan":null}}}`,
		delta:   `{"state":{"fan":"low"},"metadata":{"fan":{"timestamp":$T0}},"version":2,"timestamp":$T1}`,
		desired: `{"fan":"low"}`, version: 2,
	},
	{
		name:    "a nested delta keeps only the differing leaves and the path to them",
		before:  []step{upd(`{"state":{"reported":{"lights":{"on":true,"color":{"r":1,"g":2}}}}}`)},
		req:     `{"state":{"desired":{"lights":{"on":true,"color":{"r":1,"g":9}}}}}`,
		delta:   `{"state":{"lights":{"color":{"g":9}}},"metadata":{"lights":{"color":{"g":{"timestamp":$T1}}}},"version":2,"timestamp":$T1}`,
		desired: `{"lights":{"on":true,"color":{"r":1,"g":9}}}`, reported: `{"lights":{"on":true,"color":{"r":1,"g":2}}}`, version: 2,
	},
	{
		name:    "arrays in the delta compare and travel whole",
		before:  []step{upd(`{"state":{"reported":{"seq":[1,2,3],"same":[1,[2]]}}}`)},
		req:     `{"state":{"desired":{"seq":[1,3,2],"same":[1,[2]]}}}`,
		delta:   `{"state":{"seq":[1,3,2]},"metadata":{"seq":[{"timestamp":$T1},{"timestamp":$T1},{"timestamp":$T1}]},"version":2,"timestamp":$T1}`,
		desired: `{"seq":[1,3,2],"same":[1,[2]]}`, reported: `{"seq":[1,2,3],"same":[1,[2]]}`, version: 2,
	},
	{
		name:    "values of different types differ",
		before:  []step{upd(`{"state":{"reported":{"a":"1","b":true,"c":0}}}`)},
		req:     `{"state":{"desired":{"a":1,"b":"true","c":false}}}`,
		delta:   `{"state":{"a":1,"b":"true","c":false},"metadata":{"a":{"timestamp":$T1},"b":{"timestamp":$T1},"c":{"timestamp":$T1}},"version":2,"timestamp":$T1}`,
		desired: `{"a":1,"b":"true","c":false}`, reported: `{"a":"1","b":true,"c":0}`, version: 2,
	},
	{
		name:    "numbers compare by value",
		before:  []step{upd(`{"state":{"reported":{"a":1,"b":250,"c":-0}}}`)},
		req:     `{"state":{"desired":{"a":1.0,"b":2.5e2,"c":0}}}`,
		delta:   "none",
		desired: `{"a":1.0,"b":2.5e2,"c":0}`, reported: `{"a":1,"b":250,"c":-0}`, version: 2,
	},
	{
		name:    "get carries the delta beside desired and reported",
		before:  []step{upd(`{"state":{"desired":{"fan":"high","led":"on"},"reported":{"fan":"low","led":"on","rpm":900}}}`)},
		op:      OpGet,
		req:     `{"clientToken":"req-43"}`,
		version: 1,
		accepted: `{"state":{"desired":{"fan":"high","led":"on"},"reported":{"fan":"low","led":"on","rpm":900},"delta":{"fan":"high"}},` +
			`"metadata":{"desired":{"fan":{"timestamp":$T0},"led":{"timestamp":$T0}},"reported":{"fan":{"timestamp":$T0},"led":{"timestamp":$T0},"rpm":{"timestamp":$T0}}},` +
			`"version":1,"timestamp":$T1,"clientToken":"req-43"}`,
	},
	{
		name:     "get with an empty payload answers without a clientToken",
		before:   []step{upd(`{"state":{"reported":{"a":1}}}`)},
		op:       OpGet,
		version:  1,
		accepted: `{"state":{"reported":{"a":1}},"metadata":{"reported":{"a":{"timestamp":$T0}}},"version":1,"timestamp":$T1}`,
	},
	{
		name:    "named shadows keep their own documents and versions",
		id:      ID{Thing: "Pump-7", Name: "motor"},
		req:     `{"state":{"desired":{"rpm":1200}}}`,
		desired: `{"rpm":1200}`, version: 1,
	},

	// ---- rejections (docs/protocol.md#rejections)
	{
		name: "a payload that is not UTF-8 is refused with 415",
		req:  "{\"state\":{\"desired\":{\"a\":\"\xff\"}}}",
		code: 415, msg: MsgUnsupportedEncoding,
		rejected: `{"code":415,"message":"Unsupported documented encoding; supported encoding is UTF-8","timestamp":$T1}`,
	},
	{
		name: "a payload that is not JSON is refused",
		req:  `{"state":{"desired":{"a":1}}`,
		code: 400, msg: MsgInvalidJSON,
		rejected: `{"code":400,"message":"Invalid JSON","timestamp":$T1}`,
	},
	{name: "an empty update is not JSON", req: ``, code: 400, msg: MsgInvalidJSON},
	{name: "a JSON array is not a request", req: `[{"state":{}}]`, code: 400, msg: MsgInvalidJSON},
	{name: "JSON null is not a request", req: `null`, code: 400, msg: MsgInvalidJSON},
	{name: "trailing data after the JSON is refused", req: `{"state":{}} {}`, code: 400, msg: MsgInvalidJSON},
	{
		name: "a missing state is refused and the clientToken echoed",
		req:  `{"desired":{"a":1},"clientToken":"t-1"}`,
		code: 400, msg: MsgMissingState,
		rejected: `{"code":400,"message":"Missing required node: state","clientToken":"t-1","timestamp":$T1}`,
	},
	{name: "a string state is refused", req: `{"state":"on"}`, code: 400, msg: MsgStateNotObject},
	{name: "an array state is refused", req: `{"state":[{"desired":{}}]}`, code: 400, msg: MsgStateNotObject},
	{name: "a delta node inside state is refused", req: `{"state":{"desired":{"a":1},"delta":{"a":1}}}`, code: 400, msg: "State contains an invalid node: 'delta'"},
	{name: "an unknown node inside state is refused by name", req: `{"state":{"zeta":1,"alpha":1}}`, code: 400, msg: "State contains an invalid node: 'alpha'"},
	{name: "a string desired is refused", req: `{"state":{"desired":"on"}}`, code: 400, msg: MsgDesiredNotObject},
	{name: "an array desired is refused", req: `{"state":{"desired":[1]}}`, code: 400, msg: MsgDesiredNotObject},
	{name: "a numeric reported is refused", req: `{"state":{"reported":5}}`, code: 400, msg: MsgReportedNotObject},
	{
		name:    "six levels of nesting are accepted",
		req:     `{"state":{"desired":{"l1":{"l2":{"l3":{"l4":{"l5":{"l6":1}}}}}}}}`,
		desired: `{"l1":{"l2":{"l3":{"l4":{"l5":{"l6":1}}}}}}`, version: 1,
	},
	{name: "seven levels of nesting are refused", req: `{"state":{"desired":{"l1":{"l2":{"l3":{"l4":{"l5":{"l6":{"l7":1}}}}}}}}}`, code: 400, msg: MsgTooDeep},
	{name: "ten levels of nesting are refused", req: `{"state":{"reported":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":1}}}}}}}}}}}}`, code: 400, msg: MsgTooDeep},
	{
		name:     "arrays count as levels of nesting",
		req:      `{"state":{"reported":{"m":[[[[[1]]]]]}}}`,
		reported: `{"m":[[[[[1]]]]]}`, version: 1,
	},
	{name: "an array one level too deep is refused", req: `{"state":{"reported":{"m":[[[[[[1]]]]]]}}}`, code: 400, msg: MsgTooDeep},
	{name: "an array holding null is refused", req: `{"state":{"desired":{"a":[1,null]}}}`, code: 400, msg: MsgArrayHoldsNull},
	{name: "a null deep inside an array is refused", req: `{"state":{"desired":{"a":[{"b":null}]}}}`, code: 400, msg: MsgArrayHoldsNull},
	{
		name:    "a clientToken of 64 bytes is accepted",
		req:     `{"state":{"desired":{"a":1}},"clientToken":"` + strings.Repeat("x", 64) + `"}`,
		desired: `{"a":1}`, version: 1,
	},
	{
		name: "a clientToken of 65 bytes is refused and not echoed",
		req:  `{"state":{"desired":{"a":1}},"clientToken":"` + strings.Repeat("x", 65) + `"}`,
		code: 400, msg: MsgInvalidClientToken,
		rejected: `{"code":400,"message":"Invalid clientToken","timestamp":$T1}`,
	},
	{name: "a numeric clientToken is refused", req: `{"state":{"desired":{"a":1}},"clientToken":7}`, code: 400, msg: MsgInvalidClientToken},
	{name: "a string version is refused", req: `{"state":{"desired":{"a":1}},"version":"1"}`, code: 400, msg: MsgInvalidVersion},
	{name: "a fractional version is refused", req: `{"state":{"desired":{"a":1}},"version":1.5}`, code: 400, msg: MsgInvalidVersion},
	{name: "a negative version is refused", req: `{"state":{"desired":{"a":1}},"version":-1}`, code: 400, msg: MsgInvalidVersion},
	{name: "a null version is refused", req: `{"state":{"desired":{"a":1}},"version":null}`, code: 400, msg: MsgInvalidVersion},
	{name: "a version past int64 is refused", req: `{"state":{"desired":{"a":1}},"version":99999999999999999999}`, code: 400, msg: MsgInvalidVersion},

	// ---- limits (docs/protocol.md#limits)
	{
		name:    "a state of exactly 8192 bytes is accepted",
		req:     `{"state":{"desired":{"k":"` + strings.Repeat("x", MaxStateBytes-8) + `"}}}`,
		desired: `{"k":"` + strings.Repeat("x", MaxStateBytes-8) + `"}`, version: 1,
	},
	{
		name: "a state of 8193 bytes is refused with 413",
		req:  `{"state":{"desired":{"k":"` + strings.Repeat("x", MaxStateBytes-7) + `"}},"clientToken":"big"}`,
		code: 413, msg: MsgPayloadTooLarge,
		rejected: `{"code":413,"message":"The payload exceeds the maximum size allowed","clientToken":"big","timestamp":$T1}`,
	},
	{
		name: "a 9000-byte state is refused",
		req:  `{"state":{"reported":{"k":"` + strings.Repeat("x", 9000) + `"}}}`,
		code: 413, msg: MsgPayloadTooLarge,
	},
	{
		name:   "the size counts desired and reported together after the merge",
		before: []step{upd(`{"state":{"desired":{"k":"` + strings.Repeat("x", 5000) + `"}}}`)},
		req:    `{"state":{"reported":{"k":"` + strings.Repeat("y", 5000) + `"}}}`,
		code:   413, msg: MsgPayloadTooLarge,
	},
	{
		name:     "a large request that deletes enough to fit is accepted",
		before:   []step{upd(`{"state":{"desired":{"k":"` + strings.Repeat("x", 5000) + `"}}}`)},
		req:      `{"state":{"desired":{"k":null},"reported":{"k":"` + strings.Repeat("y", 5000) + `"}}}`,
		reported: `{"k":"` + strings.Repeat("y", 5000) + `"}`, version: 2,
	},
	{
		name: "escaped characters count as they are encoded",
		req:  `{"state":{"desired":{"k":"` + strings.Repeat(`\n`, (MaxStateBytes-8)/2) + `x"}}}`,
		code: 413, msg: MsgPayloadTooLarge,
	},
	{
		name: "a payload over 128 KiB is refused",
		req:  `{"state":{"desired":{"a":1}},"pad":"` + strings.Repeat("p", MaxPayloadBytes) + `"}`,
		code: 413, msg: MsgPayloadTooLarge,
	},

	// ---- get and delete payloads
	{
		name:   "get with invalid JSON is refused",
		before: []step{upd(`{"state":{"desired":{"a":1}}}`)},
		op:     OpGet, req: `{clientToken}`,
		code: 400, msg: MsgInvalidJSON,
	},
	{
		name:   "delete with a non-UTF-8 body is refused",
		before: []step{upd(`{"state":{"desired":{"a":1}}}`)},
		op:     OpDelete, req: "\xfe",
		code: 415, msg: MsgUnsupportedEncoding,
	},
	{
		name:   "delete with an over-long clientToken is refused and the shadow kept",
		before: []step{upd(`{"state":{"desired":{"a":1}}}`)},
		op:     OpDelete, req: `{"clientToken":"` + strings.Repeat("z", 65) + `"}`,
		code: 400, msg: MsgInvalidClientToken,
	},
}

func TestConformance(t *testing.T) {
	for _, tc := range conformanceCases {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id
			if id.Thing == "" {
				id = ID{Thing: "Pump-7"}
			}
			cur := Shadow{ID: id}
			for i, s := range tc.before {
				out := Apply(cur, s.op, []byte(s.req), time.Unix(t0+s.at, 0))
				if out.Rejected != nil {
					t.Fatalf("setup step %d (%s %s) rejected: %v", i, s.op, s.req, out.Rejected)
				}
				cur = out.Shadow
			}
			op, at := tc.op, tc.at
			if op == "" {
				op = OpUpdate
			}
			if at == 0 {
				at = 100
			}
			before := clone(t, cur)
			out := Apply(cur, op, []byte(tc.req), time.Unix(t0+at, 0))
			if diff := cmp.Diff(before, clone(t, cur)); diff != "" {
				t.Fatalf("Apply modified its input (-before +after):\n%s", diff)
			}
			ts := map[string]string{"$T0": strconv.Itoa(t0), "$T1": strconv.Itoa(t0 + int(at))}

			if tc.code != 0 {
				if out.Rejected == nil {
					t.Fatalf("accepted, want rejection %d %q; accepted message: %s", tc.code, tc.msg, short(mustJSON(t, out.Accepted)))
				}
				if out.Rejected.Code != tc.code || out.Rejected.Message != tc.msg {
					t.Errorf("rejected with %d %q, want %d %q", out.Rejected.Code, out.Rejected.Message, tc.code, tc.msg)
				}
				if tc.rejected != "" {
					jsonEq(t, "rejected message", out.Rejected, tc.rejected, ts)
				}
				if out.Accepted != nil || out.Delta != nil || out.Documents != nil {
					t.Errorf("a rejection published more: accepted=%v delta=%v documents=%v", out.Accepted != nil, out.Delta != nil, out.Documents != nil)
				}
				if diff := cmp.Diff(clone(t, cur), clone(t, out.Shadow)); diff != "" {
					t.Errorf("a rejection changed the shadow (-before +after):\n%s", diff)
				}
				return
			}
			if out.Rejected != nil {
				t.Fatalf("rejected: %v", out.Rejected)
			}
			if op == OpGet {
				if diff := cmp.Diff(clone(t, cur), clone(t, out.Shadow)); diff != "" {
					t.Errorf("get changed the shadow (-before +after):\n%s", diff)
				}
			} else {
				jsonEq(t, "desired", sectionOrNull(out.Shadow.Desired), orNull(tc.desired), ts)
				jsonEq(t, "reported", sectionOrNull(out.Shadow.Reported), orNull(tc.reported), ts)
			}
			if out.Shadow.Version != tc.version {
				t.Errorf("stored version %d, want %d", out.Shadow.Version, tc.version)
			}
			if tc.accepted != "" {
				jsonEq(t, "accepted message", out.Accepted, tc.accepted, ts)
			}
			switch tc.delta {
			case "":
			case "none":
				if out.Delta != nil {
					t.Errorf("delta published, want none: %s", short(mustJSON(t, out.Delta)))
				}
			default:
				if out.Delta == nil {
					t.Fatalf("no delta published, want %s", tc.delta)
				}
				jsonEq(t, "delta message", out.Delta, tc.delta, ts)
			}
			if op == OpUpdate && out.Documents == nil {
				t.Errorf("accepted update published no documents message")
			}
			if op != OpUpdate && (out.Documents != nil || out.Delta != nil) {
				t.Errorf("%s published documents or delta", op)
			}
			if tc.documents != "" {
				jsonEq(t, "documents message", out.Documents, tc.documents, ts)
			}
		})
	}
	if n := len(conformanceCases); n < 40 {
		t.Errorf("only %d conformance cases", n)
	}
}

func orNull(s string) string {
	if s == "" {
		return "null"
	}
	return s
}

func sectionOrNull(o Object) any {
	if o == nil {
		return nil
	}
	return o
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return string(b)
}

// short cuts long JSON in failure messages down to a readable size.
func short(s string) string {
	if len(s) > 400 {
		return s[:400] + "…"
	}
	return s
}

// jsonEq compares got, encoded as JSON, with the JSON text want (after replacing the
// timestamp placeholders) as values, so that key order does not matter.
func jsonEq(t *testing.T, what string, got any, want string, ts map[string]string) {
	t.Helper()
	for k, v := range ts {
		want = strings.ReplaceAll(want, k, v)
	}
	var g, w any
	if err := Unmarshal([]byte(mustJSON(t, got)), &g); err != nil {
		t.Fatalf("%s: decode got: %v", what, err)
	}
	if err := Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: decode want %s: %v", what, want, err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s\ngot: %s", what, short(diff), short(mustJSON(t, got)))
	}
}

// clone deep-copies a shadow through its JSON form, to detect changes made in place.
func clone(t *testing.T, s Shadow) Shadow {
	t.Helper()
	var c Shadow
	if err := json.Unmarshal([]byte(mustJSON(t, s)), &c); err != nil {
		t.Fatalf("clone: %v", err)
	}
	return c
}
