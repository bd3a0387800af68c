package schemas_test

import (
	"fmt"

	"github.com/shadowsync/shadowsync/schemas"
	"github.com/shadowsync/shadowsync/shadowstate"
)

// Thermostat is a device's state; its tags bound what an app may desire.
type Thermostat struct {
	Target float64 `json:"target" jsonschema:"minimum=5,maximum=30"`
	Mode   string  `json:"mode" jsonschema:"enum=off,enum=heat,enum=cool"`
}

func ExampleSchema_Validate() {
	schema, err := schemas.For[Thermostat](schemas.Options{})
	if err != nil {
		panic(err)
	}
	var desired shadowstate.Object
	_ = shadowstate.Unmarshal([]byte(`{"target":45,"mode":"turbo","colour":"red"}`), &desired)
	err = schema.Validate(desired)
	if err, ok := err.(*schemas.Error); ok {
		for _, f := range err.Fields {
			fmt.Printf("%s: %s\n", f.Path, f.Reason)
		}
	}
	// Unordered output:
	// /: additional properties 'colour' not allowed
	// /target: maximum: got 45, want 30
	// /mode: value must be one of 'off', 'heat', 'cool' (found "turbo")
}
