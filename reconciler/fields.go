package reconciler

import (
	"reflect"
	"slices"
	"strings"
	"sync"
)

// jsonField is one member of a struct's JSON object, named and found the way
// encoding/json finds it.
type jsonField struct {
	name     string
	index    []int // path through embedded structs, for reflect.Value.FieldByIndex
	tagged   bool  // the name came from a json tag
	asString bool  // the ",string" option: a scalar encoded inside a JSON string
}

var fieldCache sync.Map // reflect.Type → []jsonField

// jsonFields returns the members of struct type t's JSON object by encoding/json's
// rules: the json tag names a field ("-" leaves it out), unexported fields are left out,
// the fields of an embedded struct without a tag name are promoted, and when several
// fields claim a name the shallowest wins, a tagged one among equals, and a tie drops
// them all. Options such as omitempty are ignored: the reconciler writes zero values.
func jsonFields(t reflect.Type) []jsonField {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]jsonField)
	}
	f := typeFields(t)
	fieldCache.Store(t, f)
	return f
}

func typeFields(t reflect.Type) []jsonField {
	type level struct {
		t     reflect.Type
		index []int
	}
	var all []jsonField
	current := []level{{t: t}}
	visited := map[reflect.Type]bool{}
	for len(current) > 0 {
		var next []level
		// How often each name occurs at this depth: two promoted fields of the same
		// name and depth cancel out, as in encoding/json.
		for _, lv := range current {
			if visited[lv.t] {
				continue
			}
			visited[lv.t] = true
			for i := range lv.t.NumField() {
				sf := lv.t.Field(i)
				ft := sf.Type
				if sf.Anonymous {
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				index := append(slices.Clone(lv.index), i)
				if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
					next = append(next, level{t: ft, index: index})
					continue
				}
				f := jsonField{name: name, index: index, tagged: name != ""}
				if name == "" {
					f.name = sf.Name
				}
				if hasOption(opts, "string") {
					switch ft.Kind() {
					case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
						reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
						reflect.Float32, reflect.Float64, reflect.String:
						f.asString = true
					}
				}
				all = append(all, f)
			}
		}
		current = next
	}
	// Keep, per name, the dominant field: the shallowest; among equally deep ones the
	// only tagged one; none when that is still ambiguous.
	slices.SortStableFunc(all, func(a, b jsonField) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := len(a.index) - len(b.index); c != 0 {
			return c
		}
		switch {
		case a.tagged && !b.tagged:
			return -1
		case b.tagged && !a.tagged:
			return 1
		}
		return 0
	})
	var out []jsonField
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].name == all[i].name {
			j++
		}
		group := all[i:j]
		if len(group) == 1 || len(group[0].index) < len(group[1].index) || group[0].tagged && !group[1].tagged {
			out = append(out, group[0])
		}
		i = j
	}
	// Declaration order, as encoding/json writes them.
	slices.SortFunc(out, func(a, b jsonField) int { return slices.Compare(a.index, b.index) })
	return out
}

func hasOption(opts, want string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == want {
			return true
		}
	}
	return false
}
