package main

// The schema op: every op's args and result fields with their JSON types, reflected from the Go
// structs' json tags (a service test compares it with its own models).

import (
	"reflect"
	"sort"
)

type opSchema struct {
	Args   map[string]string `json:"args"`
	Result map[string]string `json:"result"`
}

type schemaResult struct {
	Ops map[string]opSchema `json:"ops"`
}

func buildSchema() *schemaResult {
	out := &schemaResult{Ops: map[string]opSchema{}}
	names := make([]string, 0, len(ops))
	for n := range ops {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		o := ops[n]
		out.Ops[n] = opSchema{Args: fieldTypes(o.args), Result: fieldTypes(o.result)}
	}
	return out
}

func fieldTypes(t reflect.Type) map[string]string {
	m := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name := jsonName(f); name != "" {
			m[name] = jsonType(f.Type)
		}
	}
	return m
}

func jsonType(t reflect.Type) string {
	if t.Kind() == reflect.Ptr {
		return jsonType(t.Elem()) + "|null"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "object"
}
