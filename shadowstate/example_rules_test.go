package shadowstate_test

import (
	"fmt"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// Delta is what the device still has to do: the keys of desired that reported lacks
// or holds differently. Nested objects recurse; arrays compare whole; keys only
// reported never appear.
func ExampleDelta() {
	var desired, reported shadowstate.Object
	_ = shadowstate.Unmarshal([]byte(`{"target":24,"mode":"heat","fan":{"speed":2,"swing":true},"zones":[1,2]}`), &desired)
	_ = shadowstate.Unmarshal([]byte(`{"target":22,"mode":"heat","fan":{"speed":2,"swing":false},"zones":[1],"temp":21.5}`), &reported)
	fmt.Println(shadowstate.Delta(desired, reported))
	// Output: map[fan:map[swing:true] target:24 zones:[1 2]]
}

// Merge applies an update to a section as the service does: null deletes a key,
// objects merge key by key, anything else replaces the stored value whole.
func ExampleMerge() {
	var stored, update shadowstate.Object
	_ = shadowstate.Unmarshal([]byte(`{"mode":"heat","fan":{"speed":2,"swing":true},"zones":[1,2]}`), &stored)
	_ = shadowstate.Unmarshal([]byte(`{"mode":null,"fan":{"speed":3},"zones":[3]}`), &update)
	fmt.Println(shadowstate.Merge(stored, update))
	// Output: map[fan:map[speed:3 swing:true] zones:[3]]
}
