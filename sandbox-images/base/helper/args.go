package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

// decodeArgs decodes a request's args into the op's struct, strictly: an unknown field, a wrong
// type, a missing or null non-pointer field are invalid_request. Pointer fields may be missing
// (nil) or null.
func decodeArgs(raw json.RawMessage, dst interface{}) *opError {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		raw = json.RawMessage("{}")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return invalid("args must be a JSON object: %v", err)
	}
	t := reflect.TypeOf(dst).Elem()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := jsonName(f)
		if name == "" {
			continue
		}
		v, ok := fields[name]
		if f.Type.Kind() == reflect.Ptr {
			continue
		}
		if !ok {
			return newErr("invalid_request", map[string]interface{}{"field": name}, "missing required field %q", name)
		}
		if string(bytes.TrimSpace(v)) == "null" {
			return newErr("invalid_request", map[string]interface{}{"field": name}, "field %q must not be null", name)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return invalid("bad args: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

func jsonName(f reflect.StructField) string {
	tag := f.Tag.Get("json")
	if tag == "-" || f.PkgPath != "" {
		return ""
	}
	name := strings.Split(tag, ",")[0]
	if name == "" {
		name = f.Name
	}
	return name
}
