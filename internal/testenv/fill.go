package testenv

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// Fill sets every exported field of the struct p points to, recursively,
// to a non-zero value distinct from every other field's: strings "s1",
// "s2"..., numbers 1, 2..., bools true, a JSON object for a
// json.RawMessage, one element for a slice, one entry for a map, a new
// value for a pointer. A codec test fills a type this way so that a field
// the codec drops, or writes under another's name, shows as a difference.
func Fill(p any) {
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("testenv.Fill: %T is not a pointer to a struct", p))
	}
	n := 0
	fill(v.Elem(), &n)
}

var rawMessage = reflect.TypeFor[json.RawMessage]()

func fill(v reflect.Value, n *int) {
	*n++
	switch {
	case v.Type() == rawMessage:
		v.SetBytes(fmt.Appendf(nil, `{"r%d":%d}`, *n, *n))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), n)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fill(k, n)
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Interface:
		v.Set(reflect.ValueOf(fmt.Sprintf("i%d", *n)))
	default:
		panic(fmt.Sprintf("testenv.Fill: cannot fill a %s", v.Type()))
	}
}

// Leaves lists the exported fields of the struct p points to, recursively
// (into structs, pointers and the first element of slices), as paths
// ("Action.Limits.Memory") with a function that sets that one field of a
// filled value to its zero value. A codec test zeroes each in turn to
// check the omitempty and null cases of every field.
func Leaves(p any) []Leaf {
	var out []Leaf
	leaves(reflect.ValueOf(p).Elem(), "", &out)
	return out
}

// Leaf is one field of a filled value: Zero zeroes it in the value Leaves
// was given.
type Leaf struct {
	Path string
	Zero func()
}

func leaves(v reflect.Value, path string, out *[]Leaf) {
	if path != "" {
		*out = append(*out, Leaf{Path: path, Zero: func() { v.Set(reflect.Zero(v.Type())) }})
	}
	if v.Type() == rawMessage {
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.IsExported() {
				leaves(v.Field(i), join(path, f.Name), out)
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			leaves(v.Elem(), path+"*", out)
		}
	case reflect.Slice:
		if v.Len() > 0 {
			leaves(v.Index(0), path+"[0]", out)
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
